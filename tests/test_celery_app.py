"""The Celery app that `celery -A swarm` finds carries the reliability settings the design requires."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
    assert conf["retry_on_startup"] and conf["events"] and conf["sent_event"] and conf["track_started"]
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
