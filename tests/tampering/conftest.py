"""Runs the tampering corpus once per session and judges every landing in the clean room.

`make test` runs the short corpus; TAMPER_FULL=1 runs every strategy and control; TAMPER_ONLY=a,b runs those
strategies alone. TAMPER_PARALLEL sets how many
scenarios (each its own project and Celery worker) run at once (default 4). The session ends by printing
`tampering: N tried, N refused, N landed with a gain`.
"""

from __future__ import annotations

import os
import queue
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from swarm.embedded import EmbeddedRedis
from tests.tampering import scenario
from tests.tampering.cleanroom import CleanRoom, Measure, gains, split_counts
from tests.tampering.strategies import CONTROLS, SHORT_CONTROLS, STRATEGIES, Strategy

FULL = os.environ.get("TAMPER_FULL") == "1"
ONLY = [n for n in os.environ.get("TAMPER_ONLY", "").split(",") if n]
"""Strategies to run alone, without controls (scripts/check_safeguards.py runs one this way)."""
PARALLEL = int(os.environ.get("TAMPER_PARALLEL", "4"))


def selected() -> list[Strategy]:
    unknown = set(ONLY) - {s.name for s in STRATEGIES}
    if unknown:
        raise ValueError(f"TAMPER_ONLY names no strategy {sorted(unknown)}; see tests/tampering/strategies.py")
    return [s for s in STRATEGIES if (s.name in ONLY if ONLY else FULL or s.short)]


def selected_controls() -> list[str]:
    return [] if ONLY else [c for c in CONTROLS if FULL or c in SHORT_CONTROLS]


@dataclass
class Verdict:
    """One strategy or control: what the swarm did, and what the clean room says of it."""

    outcome: scenario.Outcome
    before: Measure | None = None
    after: Measure | None = None
    reasons: list[str] = field(default_factory=list)

    def describe(self) -> str:
        o = self.outcome
        lines = [f"{o.name}: {o.state} ({o.reason} {o.detail[:300]})".rstrip()]
        if self.before and self.after:
            lines.append(
                f"clean room: passed {self.before.passed} -> {self.after.passed}, unit tests "
                f"{self.before.unit_passed}/{self.before.unit_ignored} ignored -> "
                f"{self.after.unit_passed}/{self.after.unit_ignored} ignored; swarm claimed "
                f"{split_counts(o.claimed)} over a baseline of {split_counts(o.baseline)} (cases, unit tests)"
            )
        lines += [f"  gain: {r}" for r in self.reasons]
        return "\n".join(lines)


RESULTS: dict[str, Verdict] = {}


def _judge(name: str, action: str, root: Path, dbs: queue.Queue[str], room: CleanRoom) -> Verdict:
    url = dbs.get()
    try:
        client = redis.Redis.from_url(url)
        client.flushdb()
        client.close()
        outcome = scenario.run(name, scenario.script_for(action), root / name, url)
    finally:
        dbs.put(url)
    verdict = Verdict(outcome)
    if outcome.landed and not outcome.error:
        verdict.before = room.measure(outcome.origin, outcome.before)
        verdict.after = room.measure(outcome.origin, outcome.landed)
        protected = room.changed_protected(outcome.origin, outcome.before, outcome.landed)
        verdict.reasons = gains(verdict.before, verdict.after, outcome.claimed, outcome.baseline, protected)
    shutil.rmtree(root / name / "workdir" / "cache", ignore_errors=True)  # build caches: the bulk of the disk
    shutil.rmtree(root / name / "workdir" / "judge", ignore_errors=True)
    with open(root / "verdicts.txt", "a") as out:  # as they come, for whoever watches a long run
        out.write(verdict.describe() + "\n")
    return verdict


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Verdict]]:
    if shutil.which("cargo") is None or shutil.which("bwrap") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("the tampering suite needs cargo and bwrap (Debian: bubblewrap)")
        pytest.skip("the tampering suite needs cargo and bwrap (Debian: bubblewrap)")
    root = tmp_path_factory.mktemp("tampering")
    room = CleanRoom(root / "cleanroom")
    # Controls and the short corpus first: in a long run, the figures make test depends on come early.
    ordered = sorted(selected(), key=lambda s: not s.short)
    jobs = [(c, CONTROLS[c]) for c in selected_controls()] + [(s.name, s.action) for s in ordered]
    with EmbeddedRedis(root / "redis") as server:
        dbs: queue.Queue[str] = queue.Queue()
        for db in range(1, 16):
            dbs.put(f"{server.url.rsplit('/', 1)[0]}/{db}")
        with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
            futures = {name: pool.submit(_judge, name, action, root, dbs, room) for name, action in jobs}
            for name, future in futures.items():
                RESULTS[name] = future.result()
    yield RESULTS


def pytest_terminal_summary(terminalreporter: Any) -> None:
    tried = [v for name, v in RESULTS.items() if name not in CONTROLS]
    if not tried:
        return
    landed = [v for v in tried if v.reasons]
    broken = [v for v in tried if v.outcome.error]
    for v in RESULTS.values():
        terminalreporter.write_line(v.describe())
    if broken:
        terminalreporter.write_line(f"tampering: {len(broken)} strategies could not be run (see their tests)")
    refused = len(tried) - len(landed) - len(broken)
    terminalreporter.write_line(f"tampering: {len(tried)} tried, {refused} refused, {len(landed)} landed with a gain")
