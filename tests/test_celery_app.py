"""The Celery app that `celery -A swarm` finds carries the reliability settings the design requires."""

from __future__ import annotations

import json
import logging
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from celery import Celery
from kombu import Connection
from kombu.common import ignore_errors
from kombu.message import Message

from swarm import celeryconfig
from swarm.settings import Settings
from tests.cluster import REPO_ROOT, write_config
from tests.conftest import Project

PROBE = """
import json
from celery.bin.celery import find_app
app = find_app("swarm")
app.loader.import_default_modules()
c = app.conf
print(json.dumps({
    "acks_late": c.task_acks_late, "reject_on_worker_lost": c.task_reject_on_worker_lost,
    "prefetch": c.worker_prefetch_multiplier, "time_limit": c.task_time_limit,
    "soft_time_limit": c.task_soft_time_limit, "visibility": c.broker_transport_options["visibility_timeout"],
    "retry_on_startup": c.broker_connection_retry_on_startup, "events": c.worker_send_task_events,
    "sent_event": c.task_send_sent_event, "track_started": c.task_track_started,
    "queues": sorted(q.name for q in c.task_queues), "beat": sorted(c.beat_schedule),
    "broker": c.broker_url, "tasks": sorted(t for t in app.tasks if t.startswith("swarm.")),
}))
"""


def probe(project: Project, config: Path) -> dict:  # type: ignore[type-arg]
    env = {"SWARM_CONFIG": str(config), "PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=project.root, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))


def test_celery_finds_the_app_with_its_reliability_settings(project: Project, redis_url: str) -> None:
    conf = probe(project, write_config(project, redis_url, {"claude": 2, "codex": 1}, agent_timeout=600))
    assert conf["acks_late"] and conf["reject_on_worker_lost"] and conf["prefetch"] == 1
    assert conf["retry_on_startup"] and conf["events"] and not conf["sent_event"] and conf["track_started"]
    assert conf["soft_time_limit"] < conf["time_limit"]
    assert conf["time_limit"] >= 600, "an attempt may run as long as its agent timeout and more"
    assert conf["visibility"] > conf["time_limit"], "a shorter visibility timeout re-delivers healthy attempts"
    assert conf["queues"] == ["claude", "codex", "merge"]
    assert conf["beat"] == ["dispatch", "reap"]
    assert conf["broker"] == redis_url
    assert conf["tasks"] == ["swarm.tasks.dispatch", "swarm.tasks.reap", "swarm.tasks.run_task"]


def test_a_worker_with_a_bad_setting_stops_at_start_with_its_name(project: Project, redis_url: str) -> None:
    config = write_config(project, redis_url, {"claude": 1}, lease_ttl=-5)
    env = {"SWARM_CONFIG": str(config), "PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-m", "celery", "-A", "swarm", "worker", "-Q", "claude"], cwd=project.root,
                         env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 2
    assert "lease_ttl" in out.stderr and "greater than 0" in out.stderr
    assert "Traceback" not in out.stderr


def test_importing_the_app_does_no_work_even_with_a_broken_config(tmp_path: Path) -> None:
    """Settings are read when Celery first needs its config: importing swarm loads, prints and exits nothing."""
    env = {"SWARM_CONFIG": str(tmp_path / "missing.toml"), "PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"}
    code = "import swarm.celery, swarm.celeryconfig, swarm.tasks; print('imported')"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout == "imported\n" and out.stderr == "", out.stderr


def tls_app(url: str) -> Celery:
    app = Celery("tls-probe")
    app.config_from_object(celeryconfig.from_settings(Settings(redis_url=url, origin="/o")))
    return app


def test_a_bare_rediss_url_works_for_workers_and_verifies_the_certificate() -> None:
    """Celery refuses `rediss://` without ssl_cert_reqs; the swarm defaults to verifying (CERT_REQUIRED)."""
    app = tls_app("rediss://:s3cret@127.0.0.1:6380/0")
    assert app.backend.connparams["ssl_cert_reqs"] == ssl.CERT_REQUIRED  # building the backend raised before
    assert app.connection_for_write().ssl == {"ssl_cert_reqs": ssl.CERT_REQUIRED}


def test_ssl_parameters_in_the_url_win_over_the_default() -> None:
    app = tls_app("rediss://:s3cret@127.0.0.1:6380/0?ssl_cert_reqs=none&ssl_ca_certs=/etc/swarm/ca.pem")
    assert app.backend.connparams["ssl_cert_reqs"] == ssl.CERT_NONE
    assert app.backend.connparams["ssl_ca_certs"] == "/etc/swarm/ca.pem"
    assert app.connection_for_write().ssl["ssl_cert_reqs"] == ssl.CERT_NONE


def test_a_plain_redis_url_gets_no_tls_settings() -> None:
    conf = celeryconfig.from_settings(Settings(redis_url="redis://127.0.0.1:6379/0", origin="/o"))
    assert "broker_use_ssl" not in conf and "redis_backend_use_ssl" not in conf


def lost_connection(redis_url: str) -> tuple[Connection, Message]:
    """A connection holding an unacknowledged message, in the state a drop leaves it (the chaos soak's network cuts
    and Redis restarts did it): the channel's pools gone, the transport without its client."""
    conn = Connection(redis_url)
    box = conn.SimpleQueue("swarm-test-ack")
    box.put({"task": "t"})
    message = box.get(timeout=10)
    message.channel._disconnect_pools()
    conn.transport.client = None
    return conn, message


def test_an_ack_queued_when_the_broker_connection_drops_is_a_connection_error_not_a_crash(redis_url: str) -> None:
    """Celery's hub runs the acks still queued after it closed the connection; the ack's own error handling covers
    connection errors, so the worker goes on (kombu raised AttributeError here, and the worker stopped)."""
    import swarm.celery  # noqa: F401 - the app module guards kombu, as `celery -A swarm` imports it

    conn, message = lost_connection(redis_url)
    transport = conn.transport
    try:
        with pytest.raises(conn.connection_errors, match="the connection to the broker is closed"):
            message.ack()
        message.ack_log_error(logging.getLogger("test"), conn.connection_errors)  # what the hub runs: logs only
        assert not message.acknowledged, "the broker delivers the message again"
    finally:  # the transport gets its client back, so the connection closes (and restores the message) cleanly
        transport.client = conn
        conn.close()


def test_closing_a_connection_the_broker_dropped_does_not_stop_the_worker(redis_url: str) -> None:
    """Celery closes a dropped connection under `ignore_errors` (connection errors only) before it reconnects;
    putting the unacknowledged message back then failed with AttributeError, and the worker stopped."""
    import swarm.celery  # noqa: F401

    conn, _ = lost_connection(redis_url)
    ignore_errors(conn, conn.close)
