#!/usr/bin/env python3
"""What the sandbox costs, measured side by side in one run (never a timing assert; this machine is shared).

    .venv/bin/python scripts/bench_sandbox.py            # starts, and the engine template's verdict (real cargo)
    .venv/bin/python scripts/bench_sandbox.py --quick    # starts only (no cargo)

Prints, each as a median over --runs: one process started bare and in an agent's sandbox; one call of a jailed
program bare, in a jail of its own (SWARM_JAIL) and through the jail server (SWARM_JAIL_SERVER); then, on a project
made from the engine template, one full verdict of main (warm build cache) by the judge sandboxed with the jail
server, sandboxed with a jail per engine call, and unsandboxed, runs interleaved, with each one's ratio to the
unsandboxed verdict and its overhead as a share of itself.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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

from swarm import jail, jailclient, jailserver, repo  # noqa: E402
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


def calls(runs: int, tmp: Path) -> None:
    """One call of a jailed program (/bin/echo) with a line on stdin: bare, in a jail of its own, through the server."""
    bins, work = tmp / "bins", tmp / "work"
    bins.mkdir()
    work.mkdir()
    echo = str(shutil.copy("/bin/echo", bins / "echo"))
    prefix = [a.replace("{dir}", str(work)) for a in jail.prefix_for(bins)]
    bare = median(runs, lambda: subprocess.run([echo, "x"], input=b"x\n", capture_output=True, check=True))
    own = median(runs, lambda: subprocess.run([*prefix, echo, "x"], input=b"x\n", capture_output=True, check=True))
    server = jailserver.program(tmp / "cache")
    if server is None:
        print(f"one jailed call: bare {bare * 1000:.2f} ms, own jail {own * 1000:.2f} ms; no jail server (no cc)")
        return
    pool = jailclient.Pool(jailserver.spec(bins, server))
    try:
        with pool.session() as session:
            served = median(runs, lambda: session.run([echo, "x"], b"x\n", 10))
    finally:
        pool.close()
    print(f"one jailed call (/bin/echo): bare {bare * 1000:.2f} ms, jail per call {own * 1000:.2f} ms, "
          f"jail server {served * 1000:.2f} ms; overhead per call {(own - bare) * 1000:.2f} ms against "
          f"{(served - bare) * 1000:.2f} ms")  # fmt: skip


VARIANTS = {"jail server": (True, True), "jail per call": (True, False), "unsandboxed": (False, False)}
"""Judge set-ups by name: (sandboxed, jail server offered)."""


def verdicts(runs: int, tmp: Path) -> None:
    template = ROOT / "engine_repo_template"
    repo.init_project(template, tmp / "origin.git", tmp / "clone")
    mirror = repo.Mirror(str(tmp / "origin.git"), tmp / "mirror.git").ensure()
    main = mirror.fetch()
    settings = RepoSettings.model_validate(tomllib.loads((tmp / "clone" / ".swarm.toml").read_text()))
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    passed: dict[str, set[int]] = {name: set() for name in VARIANTS}
    harness: dict[str, list[float]] = {name: [] for name in VARIANTS}
    judges = {name: Judge(mirror, tmp / f"judge-{i}", seed="bench", sandboxed=boxed, jail_server=served)
              for i, (name, (boxed, served)) in enumerate(VARIANTS.items())}  # fmt: skip

    def once(name: str) -> float:
        start = time.perf_counter()
        verdict = judges[name].run(settings, "full", main, main, tmp / f"{name}.log", agent_id="bench", timeout=900)
        assert verdict.ok, verdict.reason
        passed[name].add(verdict.passed)
        harness[name].append(float(verdict.summary.get("elapsed_s") or 0))  # the harness's own figure
        return time.perf_counter() - start

    for name in VARIANTS:
        once(name)  # the first build is cold; the figure is the warm, incremental one every landing sees
    for _ in range(runs):  # interleaved, so a change of the machine's load falls on all three alike
        for name in VARIANTS:
            times[name].append(once(name))
    figures = {name: statistics.median(t) for name, t in times.items()}
    bare = figures["unsandboxed"]
    parts = [f"{name} {t:.2f} s (ratio {t / bare:.2f}, overhead {100 * (t - bare) / t:.1f}%)"
             for name, t in figures.items() if name != "unsandboxed"]  # fmt: skip
    print(f"full verdict of the engine template (warm build cache, median of {runs} interleaved runs): "
          f"unsandboxed {bare:.2f} s; " + "; ".join(parts) + "; overhead as a share of that verdict")  # fmt: skip
    inner = {name: statistics.median(t[1:]) for name, t in harness.items()}  # t[0]: the cold run's
    print("of which the harness (all engine calls; the rest is the build): " + ", ".join(
        f"{name} {t:.2f} s (ratio {t / inner['unsandboxed']:.2f})" for name, t in inner.items()))  # fmt: skip
    print("passed counts (must agree): " + json.dumps({k: sorted(v) for k, v in passed.items()}))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="process starts only, no cargo")
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as tmp:
        starts(args.runs * 4, Path(tmp))
        calls(args.runs * 40, Path(tmp))
        if not args.quick:
            verdicts(args.runs, Path(tmp))


if __name__ == "__main__":
    main()
