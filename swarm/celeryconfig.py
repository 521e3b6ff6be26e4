"""Celery configuration, computed from the swarm's settings when Celery first reads its config."""

from __future__ import annotations

import sys

from kombu.entity import Queue

from swarm.errors import SettingsError
from swarm.settings import load_settings

try:
    _settings = load_settings()
    _settings.require("redis_url")
except SettingsError as exc:
    # Stop start-up with the setting's name and what is wrong, not a traceback through Celery's loader.
    print(f"error: {exc}", file=sys.stderr)
    raise SystemExit(2) from None
_limit = _settings.attempt_time_limit
_control = _settings.control_queue

broker_url = _settings.redis_url
result_backend = _settings.redis_url
# Redelivering a message whose attempt is still healthy would start a second attempt of the task: the broker's
# visibility timeout must outlive the longest attempt. Crashed attempts come back through leases and the reaper.
broker_transport_options = {"visibility_timeout": int(_limit * 2)}
result_backend_transport_options = {"visibility_timeout": int(_limit * 2)}
broker_connection_retry_on_startup = True

task_queues = [Queue(name) for name in _settings.vendors] + [Queue(_control)]
task_default_queue = _control
task_routes = {"swarm.tasks.dispatch": {"queue": _control}, "swarm.tasks.reap": {"queue": _control}}

task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
task_time_limit = int(_limit)
task_soft_time_limit = int(_limit - 60)
task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
result_expires = 7 * 24 * 3600

worker_send_task_events = True
task_send_sent_event = True
task_track_started = True

# A control message not taken within its interval is superseded by the next one: it expires instead of piling up.
beat_schedule = {
    "dispatch": {
        "task": "swarm.tasks.dispatch",
        "schedule": _settings.dispatch_interval,
        "options": {"expires": _settings.dispatch_interval},
    },
    "reap": {
        "task": "swarm.tasks.reap",
        "schedule": _settings.reap_every,
        "options": {"expires": _settings.reap_every},
    },
}
