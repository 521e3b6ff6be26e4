"""The Celery app: `celery -A swarm worker -Q claude` finds it here. One queue per vendor plus a control queue."""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any

import redis
from celery import Celery
from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    celeryd_after_setup,
    celeryd_init,
    worker_process_init,
)
from kombu.transport import redis as kombu_redis

from swarm import celeryconfig, proc, sandbox
from swarm.errors import SwarmError
from swarm.redact import redact_logging
from swarm.settings import load_settings

log = logging.getLogger(__name__)

app = Celery("swarm", include=["swarm.tasks", "swarm.worker"])


def _a_closed_broker_connection_is_a_connection_error() -> None:
    """A worker whose broker connection drops must reconnect, not die of the drop.

    On a lost connection Celery closes the connection and restarts its consumer. Two steps of that can run on a
    channel whose transport has already lost its client: closing the channel (which puts unacknowledged messages
    back) and the acks its hub still has queued. kombu's Redis transport then raises AttributeError (`'NoneType'
    object has no attribute 'hostname'`, as in celery/kombu#582), which neither Celery's `ignore_errors` nor the ack's
    error handling covers, and the worker stops with "Unrecoverable error": its vendor queue is left without a
    consumer until someone restarts it. The chaos soak's network cuts and Redis restarts did it in 4 of 8 runs.
    Here that state raises the Redis ConnectionError it is, which both already handle: the worker reconnects. What
    is lost is an ack or a restore, and nothing more: tasks are acknowledged late, so the broker delivers the message
    again, and a task delivered twice does nothing twice (its lease and landed ref see to that).
    """
    original = getattr(kombu_redis.Channel, "_connparams", None)
    if original is None:  # a kombu without this private method: nothing to guard (test_celery_app shows if needed)
        return

    def _connparams(self: kombu_redis.Channel, asynchronous: bool = False) -> dict[str, Any]:
        if getattr(self.connection, "client", None) is None:
            raise redis.exceptions.ConnectionError("the connection to the broker is closed")
        return dict(original(self, asynchronous=asynchronous))

    kombu_redis.Channel._connparams = _connparams  # type: ignore[method-assign]


_a_closed_broker_connection_is_a_connection_error()


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


@celeryd_init.connect
def _warm_sandbox_caches(**kwargs: Any) -> None:
    """Walk the system's library folders once in the worker's main process, before it forks its pool: every pool
    process inherits the list of libraries the build sandbox hides instead of walking for it (about half a second
    here) on its first verdict."""
    sandbox.masked_libraries()


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
