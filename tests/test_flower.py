"""A real Flower watching a real run: every page answers, attempts show what happened, control tasks stay out."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from swarm.launch import free_port
from tests import browser
from tests.cluster import Cluster, write_config
from tests.conftest import Project, task_file, wait_for

pytestmark = pytest.mark.e2e

DATATABLE = {
    "draw": "1", "start": "0", "length": "50", "search[value]": "", "order[0][column]": "0",
    "order[0][dir]": "desc", "columns[0][data]": "received",
}  # fmt: skip


AUTH = ("swarm", "s3cret")


class Flower:
    """Flower behind basic auth, as `swarm up` starts it."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.browser_base = f"http://{AUTH[0]}:{AUTH[1]}@127.0.0.1:{port}"
        token = base64.b64encode(f"{AUTH[0]}:{AUTH[1]}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}"}

    def get(self, path: str) -> tuple[int, str]:
        try:
            request = urllib.request.Request(self.base + path, headers=self.headers)
            with urllib.request.urlopen(request, timeout=60) as resp:
                return resp.status, resp.read().decode(errors="replace")
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode(errors="replace")
        except OSError:
            return 0, ""

    def tasks(self) -> dict[str, Any]:
        status, body = self.get("/api/tasks")
        assert status == 200, body[-3000:]
        return dict(json.loads(body))

    def every_page(self) -> dict[str, int]:
        """The status of every page and API call a user or Prometheus makes, with each task's own page."""
        paths = ["/", "/tasks", "/tasks/datatable?" + urllib.parse.urlencode(DATATABLE), "/api/tasks", "/workers",
                 "/api/workers", "/metrics"]  # fmt: skip
        paths += [f"/task/{uuid}" for uuid in self.tasks()]
        statuses = {}
        for path in paths:
            status, body = self.get(path)
            statuses[path] = status
            assert status == 200, f"{path} answered {status}: {body[-3000:]}"
        return statuses


@pytest.fixture
def cluster(project: Project, redis_url: str) -> Iterator[Cluster]:
    c = Cluster(project, write_config(project, redis_url, {"claude": 1}, max_attempts=2))
    try:
        yield c
    finally:
        c.stop()
        print(c.dump_logs())


def test_flower_answers_every_page_during_and_after_a_run_and_shows_each_attempt(
    project: Project, cluster: Cluster, tmp_path: Path
) -> None:
    go = project.signals / "go"
    project.add_tasks(
        {
            "slow": task_file(
                "Slow",
                f"sh touch {project.signals / 'slow.started'}\nwait-file {go} 120\nwrite src/slow.txt slow",
                priority=9,
            ),  # fmt: skip
            "good": task_file("Good", "write src/good.txt good", priority=5),
            "broken": task_file("Always breaks", "write src/broken.txt BREAK", priority=1),
        }
    )
    port = free_port()
    flower = Flower(port)
    cluster.start("flower", [sys.executable, "-m", "celery", "-A", "swarm", "flower", "--address=127.0.0.1",
                             f"--port={port}"], env={"FLOWER_BASIC_AUTH": ":".join(AUTH)})  # fmt: skip
    wait_for(lambda: flower.get("/api/tasks")[0] == 200, 60, "Flower to answer")
    cluster.worker("w1", "claude")
    cluster.wait_for_workers(["w1"])
    cluster.beat()

    # While an attempt runs (its agent waits for `go`), Flower shows it in its stage and every page answers.
    wait_for((project.signals / "slow.started").exists, 90, "the slow attempt's agent to start")
    wait_for(lambda: "AGENT_RUNNING" in {t["state"] for t in flower.tasks().values()}, 30, "Flower to see the stage")
    flower.every_page()
    go.touch()

    def settled() -> bool:
        states = {t["id"]: t["state"] for t in cluster.status()["tasks"]}
        return states == {"slow": "landed", "good": "landed", "broken": "failed"}

    wait_for(settled, 180, "slow and good landed, broken failed")
    wait_for(lambda: len(flower.tasks()) >= 4 and all(t["state"] in ("SUCCESS", "ATTEMPT_REJECTED", "TASK_FAILED")
             for t in flower.tasks().values()), 30, "Flower to see every attempt end")  # fmt: skip
    statuses = flower.every_page()
    tasks = flower.tasks()

    # Only attempts are listed: dispatch and reap ran (beat) but send no events and keep no results.
    assert {t["name"] for t in tasks.values()} == {"swarm.tasks.run_task"}, tasks
    by_state: dict[str, list[dict[str, Any]]] = {}
    for t in tasks.values():
        by_state.setdefault(t["state"], []).append(t)
    assert sorted(by_state) == ["ATTEMPT_REJECTED", "SUCCESS", "TASK_FAILED"], by_state.keys()
    assert all(isinstance(t["worker"], str) and t["worker"].startswith("w1@") for t in tasks.values())
    landed = [t for t in by_state["SUCCESS"] if "'outcome': 'landed'" in (t["result"] or "")]
    assert len(landed) == 2, by_state["SUCCESS"]
    for state in ("ATTEMPT_REJECTED", "TASK_FAILED"):
        (attempt,) = by_state[state]
        result = attempt["result"]
        assert "'reason': 'oracle_red'" in result and "'log_dir': " in result and "'full': {'passed'" in result

    # The attempt's page, as a browser renders it, says how it ended and why.
    failed = by_state["TASK_FAILED"][0]["uuid"]
    page = browser.dom(f"{flower.browser_base}/task/{failed}")
    assert "TASK_FAILED" in page and "oracle_red" in page and "log_dir" in page
    assert "Rejected" not in page, "no raw Celery 'rejected' timestamp row"
    shot = browser.screenshot(f"{flower.browser_base}/task/{failed}", tmp_path / "attempt.png")
    assert browser.distinct_rows(shot) > 20, "the screenshot of the attempt's page is blank"

    # Celery logged no error for attempts the swarm recorded (a rejection is an expected end, not a crash).
    worker_log = (cluster.logs / "w1.log").read_text(errors="replace")
    assert "ERROR/" not in worker_log, worker_log[-4000:]
    assert "ignored" in worker_log.lower()
    assert set(statuses.values()) == {200}


CELERY_CALL = """
import sys
from swarm.tasks import run_task
if sys.argv[1] == "send":
    print(run_task.apply_async(args=[sys.argv[2], "claude"], queue="claude").id)
else:
    result = run_task.AsyncResult(sys.argv[2])
    print(result.state, result.info)
"""


def test_an_attempt_cut_off_from_git_ends_interrupted_not_as_a_celery_failure(
    project: Project, cluster: Cluster
) -> None:
    def celery(*args: str) -> str:
        done = subprocess.run([sys.executable, "-c", CELERY_CALL, *args], cwd=project.root, env=cluster.env(),
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    project.add_tasks({"alpha": task_file("Alpha", "write src/alpha.txt alpha")})
    cluster.worker("w1", "claude")
    cluster.wait_for_workers(["w1"])
    celery("send", "alpha")
    wait_for(lambda: "alpha" in project.landed(), 120, "alpha to land")
    project.origin.rename(project.origin.with_suffix(".away"))  # origin unreachable, as in a network partition
    task_id = celery("send", "alpha")
    wait_for(lambda: "ATTEMPT_INTERRUPTED" in celery("state", task_id), 120, "the attempt to end interrupted")
    assert "GitError" in celery("state", task_id)
    worker_log = (cluster.logs / "w1.log").read_text(errors="replace")
    assert "attempt of alpha interrupted" in worker_log
    assert "ERROR/" not in worker_log and "FAILURE" not in worker_log, worker_log[-4000:]
