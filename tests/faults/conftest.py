"""Fault-injection harness: each scenario runs a small backlog to the end, then `swarm audit --oracle`.

Every scenario has its own Redis (the faults restart, wipe or partition it), its own project and workers.
The session's figures (scenarios, faults, tasks landed, lost, landed twice, red commits) are printed at the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from swarm.embedded import EmbeddedRedis, find_redis_server
from tests.cluster import Cluster, write_config
from tests.conftest import Project, wait_for

FIGURES: dict[str, int] = {"scenarios": 0, "faults": 0, "landed": 0, "lost": 0, "twice": 0, "red": 0}


@dataclass
class Fault:
    project: Project
    redis: EmbeddedRedis
    cluster: Cluster
    faults: int = 0
    notes: list[str] = field(default_factory=list)

    def inject(self, what: str) -> None:
        self.faults += 1
        self.notes.append(what)

    def settle(
        self, expect_landed: set[str], expect_failed: set[str] = frozenset(), timeout: float = 150
    ) -> dict[str, Any]:  # type: ignore[assignment]
        """Wait until every task landed or failed; check the outcome and the audit; record the figures."""

        def settled() -> bool:
            try:
                tasks = self.cluster.status()["tasks"]
            except Exception:  # noqa: BLE001 - Redis may be coming back from the fault
                return False
            return bool(tasks) and all(t["state"] in ("landed", "failed") for t in tasks)

        wait_for(settled, timeout, "every task landed or failed")
        report = self.cluster.status()
        states = {t["id"]: t["state"] for t in report["tasks"]}
        landed = {t for t, s in states.items() if s == "landed"}
        audit = self.cluster.swarm("audit", "--oracle", check=False)
        FIGURES["scenarios"] += 1
        FIGURES["faults"] += self.faults
        FIGURES["landed"] += len(landed)
        FIGURES["lost"] += len(expect_landed - landed)
        FIGURES["twice"] += audit.stdout.count("landed more than once")
        FIGURES["red"] += audit.stdout.count(": red:")
        assert landed == expect_landed, states
        assert {t for t, s in states.items() if s == "failed"} == set(expect_failed), states
        assert audit.returncode == 0, audit.stdout + audit.stderr
        per_task = self.project.git("log", "--format=%(trailers:key=Swarm-Task,valueonly)", "main").split()
        assert all(per_task.count(t) == 1 for t in landed), "a task landed more than once"
        return report


@pytest.fixture
def fault(project: Project, tmp_path: Path) -> Iterator[Fault]:
    if find_redis_server() is None:
        pytest.skip("no redis-server")
    server = EmbeddedRedis(tmp_path / "redis").start()
    cluster = Cluster(project, write_config(project, server.url, {"claude": 2, "codex": 1}))
    f = Fault(project, server, cluster)
    try:
        yield f
    finally:
        cluster.stop()
        server.stop()
        print(cluster.dump_logs())


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES["scenarios"]:
        line = ", ".join(f"{k} {v}" for k, v in FIGURES.items())
        terminalreporter.write_line(f"fault suite figures: {line}")
