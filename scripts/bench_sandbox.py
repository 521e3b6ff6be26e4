#!/usr/bin/env python3
"""What the sandbox costs, measured side by side in one run (never a timing assert; this machine is shared).

    .venv/bin/python scripts/bench_sandbox.py            # starts, and the engine template's verdict (real cargo)
    .venv/bin/python scripts/bench_sandbox.py --quick    # starts only (no cargo)

Prints, each as a median over --runs: one process started bare and in an agent's sandbox; then, on a project made
from the engine template, one full verdict of main (warm build cache) by the judge sandboxed (build sandbox, engine
jailed per case) and unsandboxed, and the overhead as a share of the sandboxed verdict.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from swarm import repo  # noqa: E402
from swarm.judge import Judge  # noqa: E402
from swarm.sandbox import Sandbox, toolchains  # noqa: E402
from swarm.settings import RepoSettings  # noqa: E402


def median(runs: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def starts(runs: int, tmp: Path) -> None:
    box = Sandbox(rw=[tmp], ro=toolchains(os.environ.get("PATH", "")))
    argv = ["python3", "-c", "pass"]
    bare = median(runs, lambda: subprocess.run(argv, check=True))
    boxed = median(runs, lambda: subprocess.run(box.wrap(argv, tmp), check=True))
    print(f"start of one process (python3 -c pass): bare {bare * 1000:.1f} ms, sandboxed {boxed * 1000:.1f} ms; "
          f"overhead {(boxed - bare) * 1000:.1f} ms per start")  # fmt: skip


def verdicts(runs: int, tmp: Path) -> None:
    template = ROOT / "engine_repo_template"
    repo.init_project(template, tmp / "origin.git", tmp / "clone")
    mirror = repo.Mirror(str(tmp / "origin.git"), tmp / "mirror.git").ensure()
    main = mirror.fetch()
    settings = RepoSettings.model_validate(tomllib.loads((tmp / "clone" / ".swarm.toml").read_text()))
    figures = {}
    for name, sandboxed in (("sandboxed", True), ("unsandboxed", False)):
        judge = Judge(mirror, tmp / f"judge-{name}", seed="bench", sandboxed=sandboxed)

        def once(judge: Judge = judge, name: str = name) -> None:
            verdict = judge.run(settings, "full", main, main, tmp / f"{name}.log", agent_id="bench", timeout=900)
            assert verdict.ok, verdict.reason

        once()  # the first build is cold; the figure is the warm, incremental one every landing sees
        figures[name] = median(runs, once)
    boxed, bare = figures["sandboxed"], figures["unsandboxed"]
    print(f"full verdict of the engine template (warm build cache, {runs} runs): sandboxed {boxed:.2f} s, "
          f"unsandboxed {bare:.2f} s; ratio {boxed / bare:.2f}; overhead {100 * (boxed - bare) / boxed:.1f}% "
          f"of the sandboxed verdict")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="process starts only, no cargo")
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as tmp:
        starts(args.runs * 4, Path(tmp))
        if not args.quick:
            verdicts(args.runs, Path(tmp))


if __name__ == "__main__":
    main()
