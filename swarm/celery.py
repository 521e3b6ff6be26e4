"""The Celery app: `celery -A swarm worker -Q claude` finds it here. One queue per vendor plus a control queue."""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any

from celery import Celery
from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    celeryd_after_setup,
    celeryd_init,
    worker_process_init,
)
from kombu.message import Message

from swarm import celeryconfig, proc, sandbox
from swarm.errors import SwarmError
from swarm.redact import redact_logging
from swarm.settings import load_settings

log = logging.getLogger(__name__)

app = Celery("swarm", include=["swarm.tasks", "swarm.worker"])


def _ack_survives_a_lost_broker() -> None:
    """A worker whose broker connection drops while an ack is pending must not die of it.

    On a lost connection Celery restarts the consumer: it closes the connection, then its hub runs the acks still
    queued, on a channel whose transport has lost its client. kombu's Redis transport then raises AttributeError
    (`'NoneType' object has no attribute 'hostname'`, as in celery/kombu#582), which no `connection_errors` covers,
    and the worker stops with "Unrecoverable error": its vendor queue is left without a consumer until someone
    restarts it (the chaos soak caught it after a network cut). The ack is lost either way, and nothing more: tasks
    are acknowledged late, so the broker delivers the message again, and a task delivered twice does nothing twice
    (its lease and landed ref see to that). Only this case is absorbed; any other AttributeError still raises.
    """
    original = Message.ack_log_error

    def ack_log_error(self: Message, logger: Any, errors: Any, multiple: bool = False) -> None:
        try:
            original(self, logger, errors, multiple=multiple)
        except AttributeError as exc:
            if getattr(getattr(self.channel, "connection", None), "client", None) is not None:
                raise
            logger.warning(
                "could not ack %r: the broker connection is gone (%s); it is delivered again", self.delivery_tag, exc
            )

    Message.ack_log_error = ack_log_error  # type: ignore[method-assign]


_ack_survives_a_lost_broker()


@app.on_configure.connect
def _configure(sender: Celery, **kwargs: Any) -> None:
    """Settings are read when Celery first needs its config, not when `swarm` is imported."""
    sender.config_from_object(celeryconfig.load())


@after_setup_logger.connect
@after_setup_task_logger.connect
def _redact_logs(logger: logging.Logger, **kwargs: Any) -> None:
    """Worker and beat logs never show the Redis password."""
    redact_logging(logger)


@celeryd_init.connect
def _require_sandbox(**kwargs: Any) -> None:
    """Fail closed: a worker runs agents and oracles only in a sandbox, unless the user opted out by name."""
    try:
        sandbox.require(load_settings().unsafe_no_sandbox)
    except SwarmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


@celeryd_after_setup.connect
def _consume_control_queue(sender: str, instance: Any, **kwargs: Any) -> None:
    """Every worker also takes control tasks (dispatch, reap), so a swarm needs no special worker for them."""
    control = instance.app.conf.task_default_queue
    instance.app.amqp.queues.select_add(control)


@worker_process_init.connect
def _die_with_parent(**kwargs: Any) -> None:
    """A pool child whose worker was killed must not go on alone: kill its agents and exit.

    Its lease then expires and the reaper hands the task to another worker within one lease TTL.
    """
    parent = os.getppid()

    def watch() -> None:
        while not threading.Event().wait(0.5):
            if os.getppid() != parent:
                log.error("worker process %d lost its parent %d; stopping its agents and exiting", os.getpid(), parent)
                proc.kill_all()
                os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
