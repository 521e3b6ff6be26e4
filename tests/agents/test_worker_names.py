"""Two workers started with the same -n name would share a slot's home and build cache: the second one is refused
at start-up with a clear error, and the first one runs on (real Celery workers, real Redis)."""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterator

import pytest
import redis

from swarm import slots
from tests.cluster import Cluster, write_config
from tests.conftest import Project

pytestmark = pytest.mark.e2e


@pytest.fixture
def cluster(project: Project, redis_url: str) -> Iterator[Cluster]:
    c = Cluster(project, write_config(project, redis_url, {"claude": 1}))
    try:
        yield c
    finally:
        c.stop()


def test_a_second_worker_with_a_live_workers_name_is_refused_with_a_clear_error(cluster: Cluster) -> None:
    first = cluster.worker("w1", "claude")
    cluster.wait_for_workers(["w1"])
    argv = [sys.executable, "-m", "celery", "-A", "swarm", "worker", "-Q", "claude", "-c", "1", "-n", "w1@%h"]
    second = cluster.start("w1-again", argv + ["--loglevel=INFO", "--without-gossip", "--without-mingle"])
    assert second.wait(timeout=120) == 2
    log = (cluster.logs / "w1-again.log").read_text()
    assert "error: a worker named w1@" in log and "is already running" in log and "-n NAME@%h" in log
    assert first.poll() is None, "the first worker runs on"
    other = cluster.worker("w2", "claude")
    cluster.wait_for_workers(["w2"])
    assert other.poll() is None, "another name starts fine"


def test_a_worker_restarted_under_its_name_after_a_crash_is_not_refused(cluster: Cluster, redis_url: str) -> None:
    first = cluster.worker("w1", "claude")
    cluster.wait_for_workers(["w1"])
    first.kill()
    first.wait(timeout=30)
    node = f"w1-{socket.gethostname()}"
    # Its slots would live on until their TTL: keep one announced for longer than this test, by the dead pid.
    slots.announce(redis.Redis.from_url(redis_url), "claude", f"{node}-0", 600, node=node,
                   host=socket.gethostname(), pid=first.pid)  # fmt: skip
    argv = [sys.executable, "-m", "celery", "-A", "swarm", "worker", "-Q", "claude", "-c", "1", "-n", "w1@%h"]
    cluster.start("w1-restarted", argv + ["--loglevel=INFO", "--without-gossip", "--without-mingle"])
    cluster.wait_for_workers(["w1-restarted"])


def test_two_workers_started_at_once_under_one_name_leave_one_running(cluster: Cluster) -> None:
    """Neither has announced a slot when the other starts: the name itself is claimed, atomically."""
    argv = [sys.executable, "-m", "celery", "-A", "swarm", "worker", "-Q", "claude", "-c", "1", "-n", "twin@%h"]
    flags = ["--loglevel=INFO", "--without-gossip", "--without-mingle"]
    twins = [cluster.start(f"twin-{i}", argv + flags) for i in (1, 2)]
    deadline = time.monotonic() + 90
    while all(t.poll() is None for t in twins) and time.monotonic() < deadline:
        time.sleep(0.2)
    refused = [i for i, t in enumerate(twins) if t.poll() is not None]
    assert len(refused) == 1, f"expected one of the twins refused, got {refused}:\n{cluster.dump_logs()}"
    assert twins[refused[0]].wait(timeout=5) == 2
    log = (cluster.logs / f"twin-{refused[0] + 1}.log").read_text()
    assert "error: a worker named twin@" in log and "is already running" in log
    time.sleep(3)
    assert twins[1 - refused[0]].poll() is None, "the other twin runs on"
