"""The Celery app: `celery -A swarm worker -Q claude` finds it here. One queue per vendor plus a control queue."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import celeryd_after_setup

app = Celery("swarm", include=["swarm.tasks"])
app.config_from_object("swarm.celeryconfig")


@celeryd_after_setup.connect
def _consume_control_queue(sender: str, instance: Any, **kwargs: Any) -> None:
    """Every worker also takes control tasks (dispatch, reap), so a swarm needs no special worker for them."""
    control = instance.app.conf.task_default_queue
    instance.app.amqp.queues.select_add(control)
