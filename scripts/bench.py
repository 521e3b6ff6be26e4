#!/usr/bin/env python3
"""What the swarm adds to each attempt, measured here: leases, dispatch, and a landing's git work.

Prints medians and, because this machine is shared and noisy, ratios to the raw operation measured in the
same run. Usage: .venv/bin/python scripts/bench.py [--rounds N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from swarm import dispatch, keys, repo  # noqa: E402
from swarm.embedded import EmbeddedRedis  # noqa: E402
from swarm.leases import Leases  # noqa: E402
from swarm.runtime import connect  # noqa: E402
from swarm.settings import Settings  # noqa: E402

TASK = "---\ntitle: T{i}\npriority: {i}\n---\nDo {i}.\n"


def median_ms(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=50)
    rounds = parser.parse_args().rounds
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(Path(tmp) / "redis") as server:
        r = redis.Redis.from_url(server.url)
        leases = Leases(r)
        raw = median_ms(lambda: r.set("raw", "x", nx=True, px=30000) and r.delete("raw"), rounds)
        lease = median_ms(lambda: leases.release(leases.acquire_task("t", 30, worker="bench")), rounds)  # type: ignore[arg-type]
        print(
            f"lease acquire+release: {lease:.2f} ms median; raw SET NX PX + DEL {raw:.2f} ms; ratio {lease / raw:.1f}"
        )

        root = Path(tmp)
        template = root / "template"
        (template / "tasks").mkdir(parents=True)
        for i in range(200):
            (template / "tasks" / f"t{i}.md").write_text(TASK.format(i=i))
        (template / ".swarm.toml").write_text('[oracle]\nfast = "true"\nfull = "true"\n')
        repo.init_project(template, root / "origin.git", root / "work")
        settings = Settings(
            redis_url=server.url,
            origin=str(root / "origin.git"),
            workdir=root / "wd",
            vendors={"a": {"adapter": "command", "command": ["true"], "concurrency": 50}},
        )  # type: ignore[arg-type]
        rt = connect(settings)
        sent: list[tuple[str, str]] = []

        def one_dispatch() -> None:
            for key in r.scan_iter(match=f"{keys.PREFIX}:queued:*"):
                r.delete(key)
            sent.clear()
            dispatch.dispatch(rt, lambda t, v: sent.append((t, v)))

        d = median_ms(one_dispatch, max(5, rounds // 5))
        fetch = median_ms(rt.mirror.fetch, max(5, rounds // 5))
        print(
            f"dispatch of a 200-task backlog (fetch, parse, {len(sent)} enqueued): {d:.1f} ms median; "
            f"git fetch alone {fetch:.1f} ms; ratio {d / fetch:.1f}"
        )

        main = rt.mirror.fetch()
        n = [0]

        def landing() -> None:
            n[0] += 1
            path = root / "wt" / f"w{n[0]}"
            wt = rt.mirror.add_worktree(path, rt.mirror.main())
            (path / f"f{n[0]}.txt").write_text("x")
            base = rt.mirror.main()
            commit = wt.snapshot(base, f"T\n\nSwarm-Task: b{n[0]}\nSwarm-Agent: bench\n", "bench")
            assert commit is not None
            rt.mirror.land(base, commit, f"b{n[0]}")
            rt.mirror.fetch()
            rt.mirror.remove_worktree(path)

        land = median_ms(landing, max(5, rounds // 5))
        clone = root / "plain"
        git(root, "clone", "-q", str(root / "origin.git"), str(clone))

        def plain() -> None:
            n[0] += 1
            (clone / f"p{n[0]}.txt").write_text("x")
            git(clone, "add", "-A")
            git(clone, "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "p")
            git(clone, "push", "-q", "origin", "HEAD:main")

        raw_push = median_ms(plain, max(5, rounds // 5))
        print(
            f"landing git work (worktree, squash commit, atomic CAS push, fetch, cleanup): {land:.1f} ms median; "
            f"plain add+commit+push {raw_push:.1f} ms; ratio {land / raw_push:.1f}"
        )
        del main


if __name__ == "__main__":
    main()
