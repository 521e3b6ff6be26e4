"""Celery configuration, computed from the swarm's settings when Celery first reads its config (never at import)."""

from __future__ import annotations

import logging
import ssl
import sys
from typing import Any

from kombu.entity import Queue

from swarm.errors import SettingsError
from swarm.redact import redact
from swarm.settings import Settings, load_settings

log = logging.getLogger(__name__)


def load() -> dict[str, Any]:
    """The configuration of this process's settings; a bad setting stops the process with exit 2 and its name."""
    try:
        settings = load_settings()
        settings.require("redis_url")
    except SettingsError as exc:
        # Stop start-up with the setting's name and what is wrong, not a traceback through Celery's loader.
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        raise SystemExit(2) from None
    return from_settings(settings)


def from_settings(settings: Settings) -> dict[str, Any]:
    """Celery's settings for a swarm: queues, reliability, time limits, events and the beat schedule."""
    assert settings.redis_url is not None
    limit = settings.attempt_time_limit
    control = settings.control_queue
    return {
        "broker_url": settings.redis_url,
        "result_backend": settings.redis_url,
        **tls(settings.redis_url),
        # Redelivering a message whose attempt is still healthy would start a second attempt of the task: the
        # broker's visibility timeout must outlive the longest attempt. Crashed attempts come back through leases.
        "broker_transport_options": {"visibility_timeout": int(limit * 2)},
        "result_backend_transport_options": {"visibility_timeout": int(limit * 2)},
        "broker_connection_retry_on_startup": True,
        "task_queues": [Queue(name) for name in settings.vendors] + [Queue(control)],
        "task_default_queue": control,
        "task_routes": {"swarm.tasks.dispatch": {"queue": control}, "swarm.tasks.reap": {"queue": control}},
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_time_limit": int(limit),
        "task_soft_time_limit": int(limit - 60),
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_expires": 7 * 24 * 3600,
        "worker_send_task_events": True,
        # No task-sent events: beat sends dispatch and reap every few seconds and each sent event would list them
        # in Flower. Queued attempts show in `swarm status`; Flower shows an attempt once a worker receives it.
        "task_send_sent_event": False,
        "task_track_started": True,
        "beat_schedule": beat_schedule(settings),
    }


def tls(redis_url: str) -> dict[str, Any]:
    """For rediss://, verify the server's certificate by default (Celery refuses a rediss:// URL that does not say
    how, and kombu alone would not verify). Parameters in the URL itself (ssl_cert_reqs, ssl_ca_certs) win."""
    if not redis_url.startswith("rediss://"):
        return {}
    return {
        "broker_use_ssl": {"ssl_cert_reqs": ssl.CERT_REQUIRED},
        "redis_backend_use_ssl": {"ssl_cert_reqs": ssl.CERT_REQUIRED},
    }


def beat_schedule(settings: Settings) -> dict[str, Any]:
    """A control message not taken within its interval is superseded by the next one: it expires, not piles up."""
    return {
        "dispatch": {
            "task": "swarm.tasks.dispatch",
            "schedule": settings.dispatch_interval,
            "options": {"expires": settings.dispatch_interval},
        },
        "reap": {
            "task": "swarm.tasks.reap",
            "schedule": settings.reap_every,
            "options": {"expires": settings.reap_every},
        },
    }
