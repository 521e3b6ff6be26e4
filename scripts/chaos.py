#!/usr/bin/env python3
"""Chaos soak: a swarm of 30+ tasks on several worker processes for a set time, under random faults.

    .venv/bin/python scripts/chaos.py --duration 600 --tasks 40 --workers 4

Faults, at random every few seconds: SIGKILL of a worker's main process (restarted a little later) or of its pool
process, SIGSTOP of a worker past its lease TTL, Redis restarted (append-only file kept) or wiped (FLUSHALL), short
and long network cuts between one worker and Redis (a TCP proxy per worker), pushes to origin stalled past the git
timeout (a pre-receive hook), and a full disk under the workdir (a small tmpfs, when this user may mount one).

When the time is up the faults stop, the swarm settles, every process is stopped, and the outcome is checked by
git alone (landed refs, trailers on main, `swarm audit --oracle`, the attempt ledger on origin) plus what is left
behind on the host. The last line printed is JSON: tasks lost, landed twice, red commits, failed tasks that ran
over their budget, leftover processes, leases and worktrees, workers that died of a fault they should have survived,
and attempt-seconds wasted by infrastructure faults.
The exit status is 1 when a promise broke.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import redis

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from swarm import identity, ledger, proc, repo  # noqa: E402
from swarm.embedded import EmbeddedRedis  # noqa: E402
from swarm.settings import load_settings  # noqa: E402
from tests.cluster import Cluster, write_config  # noqa: E402
from tests.conftest import TOY_REPO, Project, task_file  # noqa: E402
from tests.faults.proxy import Proxy  # noqa: E402

VENDORS = ("claude", "codex")
INFRA_REASONS = {"lost", "lease_lost", "error", "infrastructure"}
"""Reasons of attempts ended by a fault of the machinery (not the task's doing, nor another attempt's landing)."""
STALL_HOOK = """#!/bin/sh
# chaos: a push waits while the stall file exists, as a push to a host cut off mid-transfer would.
while [ -e "{stall}" ]; do sleep 0.2; done
"""


class Hosts:
    """Each worker on a machine of its own: a network namespace joined to this one by a veth pair (so a cut is a
    link going down), its own host name (UTS namespace) and its own workdir. Loopback and veth only."""

    def __init__(self, names: list[str], root: Path) -> None:
        self.root = root
        self.tag = f"sc{os.getpid() % 100000}"
        self.names = names
        for i, name in enumerate(names):
            ns, outer, inner = self.ns(name), f"{self.tag}o{i}", f"{self.tag}i{i}"
            for cmd in (
                ["netns", "add", ns],
                ["link", "add", outer, "type", "veth", "peer", "name", inner],
                ["link", "set", inner, "netns", ns],
                ["addr", "add", f"{self.ip(name, 1)}/24", "dev", outer],
                ["link", "set", outer, "up"],
                ["-n", ns, "addr", "add", f"{self.ip(name, 2)}/24", "dev", inner],
                ["-n", ns, "link", "set", inner, "up"],
                ["-n", ns, "link", "set", "lo", "up"],
            ):
                subprocess.run(["ip", *cmd], check=True, capture_output=True)

    def ns(self, name: str) -> str:
        return f"{self.tag}-{name}"

    def ip(self, name: str, end: int) -> str:
        return f"10.213.{self.names.index(name) + 1}.{end}"

    def host(self, name: str) -> str:
        return f"chaos-{name}"

    def workdir(self, name: str) -> Path:
        return self.root / "hosts" / self.host(name) / "workdir"

    def wrap(self, name: str, argv: list[str]) -> list[str]:
        script = f'hostname {self.host(name)} && exec "$@"'
        return ["ip", "netns", "exec", self.ns(name), "unshare", "--uts", "sh", "-c", script, "sh", *argv]

    def link(self, name: str, up: bool) -> None:
        outer = f"{self.tag}o{self.names.index(name)}"
        subprocess.run(["ip", "link", "set", outer, "up" if up else "down"], capture_output=True)

    def close(self) -> None:
        for i, name in enumerate(self.names):
            subprocess.run(["ip", "link", "del", f"{self.tag}o{i}"], capture_output=True)
            subprocess.run(["ip", "netns", "del", self.ns(name)], capture_output=True)


@dataclass
class Soak:
    args: argparse.Namespace
    root: Path
    project: Project
    redis: EmbeddedRedis
    cluster: Cluster
    proxies: dict[str, Proxy]
    queues: dict[str, str]
    rng: random.Random
    disk: Path | None
    hosts: Hosts | None = None
    log: list[dict[str, Any]] = field(default_factory=list)
    pending: list[tuple[float, str, Callable[[], None]]] = field(default_factory=list)
    stopped: set[str] = field(default_factory=set)
    down: set[str] = field(default_factory=set)

    @property
    def stall(self) -> Path:
        return self.root / "stall-pushes"

    def note(self, fault: str, target: str = "", **extra: Any) -> None:
        entry = {"t": round(time.monotonic() - self.args.t0, 1), "fault": fault, "target": target, **extra}
        self.log.append(entry)
        print(f"[{entry['t']:7.1f}s] {fault} {target}", flush=True)

    def later(self, delay: float, what: str, step: Callable[[], None]) -> None:
        self.pending.append((time.monotonic() + delay, what, step))

    def run_pending(self, everything: bool = False) -> None:
        now = time.monotonic()
        due = [p for p in self.pending if everything or p[0] <= now]
        self.pending = [p for p in self.pending if p not in due]
        for _, _, step in sorted(due, key=lambda p: p[0]):
            step()


# --- setting up ---


def make_tasks(n: int, bad: int, rng: random.Random) -> tuple[dict[str, str], set[str], set[str]]:
    """n tasks writing their own file, some slow, some after another; `bad` of them always break the oracle."""
    tasks, good, broken = {}, set(), set()
    for i in range(n):
        tid = f"t{i:02d}"
        lines = [f"@1+ sleep {rng.choice([0.2, 0.5, 1, 2, 4, 8])}"]
        if i < bad:
            lines.append(f"write src/{tid}.txt BREAK")
            broken.add(tid)
        else:
            lines.append(f"write src/{tid}.txt {tid}")
            good.add(tid)
        after = [f"t{rng.randrange(bad, i):02d}"] if i > bad + 3 and rng.random() < 0.2 else None
        tasks[tid] = task_file(f"Task {tid}", "\n".join(lines), priority=rng.randrange(10), depends_on=after)
    return tasks, good, broken


def mount_disk(folder: Path, size_mb: int) -> Path | None:
    """A small tmpfs for the workdir, so the disk can be filled; None when this user may not mount."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(folder)],
                             capture_output=True, text=True)  # fmt: skip
    if mounted.returncode != 0:
        print(f"full-disk faults skipped: cannot mount a tmpfs ({mounted.stderr.strip()})", flush=True)
        return None
    return folder


def set_up(args: argparse.Namespace, root: Path) -> Soak:
    rng = random.Random(args.seed)
    project_root = root / "project"
    workdir = project_root / "workdir"
    repo.init_project(TOY_REPO, project_root / "origin.git", project_root / "work")
    names = [f"w{i}" for i in range(args.workers)]
    hosts = Hosts(names, root) if args.hosts else None
    # With hosts, the first host's disk fills up (the others go on); without, the one shared workdir's.
    disk_at = hosts.workdir(names[0]) if hosts else workdir
    disk = mount_disk(disk_at, args.disk_mb) if args.disk_faults else None
    project = Project(project_root, project_root / "origin.git", project_root / "work", workdir)
    hook = project.origin / "hooks" / "pre-receive"
    hook.write_text(STALL_HOOK.format(stall=root / "stall-pushes"))
    hook.chmod(0o755)
    tasks, good, broken = make_tasks(args.tasks, args.bad, rng)
    project.add_tasks(tasks)
    server = EmbeddedRedis(root / "redis", persist=True).start()
    config = write_config(
        project, server.url, dict.fromkeys(VENDORS), lease_ttl=args.lease_ttl, max_attempts=args.max_attempts,
        git_timeout=args.git_timeout, agent_timeout=60,
    )  # fmt: skip
    cluster = Cluster(project, config)
    queues = {name: VENDORS[i % len(VENDORS)] for i, name in enumerate(names)}
    proxies = {n: Proxy(server.port, hosts.ip(n, 1) if hosts else "127.0.0.1") for n in names}
    soak = Soak(args, root, project, server, cluster, proxies, queues, rng, disk, hosts)
    soak.args.good, soak.args.broken = good, broken
    return soak


def start_worker(soak: Soak, name: str) -> None:
    env = {"SWARM_REDIS_URL": soak.proxies[name].url()}
    if soak.hosts is None:
        soak.cluster.worker(name, soak.queues[name], env=env)
        return
    argv = [sys.executable, "-m", "celery", "-A", "swarm", "worker", "-Q", soak.queues[name], "-c", "1",
            "-n", f"{name}@%h", "--loglevel=INFO", "--without-gossip", "--without-mingle"]  # fmt: skip
    env["SWARM_WORKDIR"] = str(soak.hosts.workdir(name))
    soak.cluster.start(name, soak.hosts.wrap(name, argv), env)


def workdirs(soak: Soak) -> list[Path]:
    return [soak.hosts.workdir(n) for n in soak.queues] if soak.hosts else [soak.project.workdir]


# --- faults ---


def alive_workers(soak: Soak) -> list[str]:
    return [n for n in soak.queues if n not in soak.down and n not in soak.stopped
            and soak.cluster.procs[n].poll() is None]  # fmt: skip


def kill_main(soak: Soak, name: str) -> None:
    os.kill(soak.cluster.procs[name].pid, signal.SIGKILL)
    soak.down.add(name)
    soak.note("SIGKILL worker main process", name)

    def restart() -> None:
        soak.down.discard(name)
        start_worker(soak, name)
        soak.note("worker restarted", name)

    soak.later(soak.rng.uniform(2, 6), "restart", restart)


def kill_pool(soak: Soak, name: str) -> None:
    try:
        children = psutil.Process(soak.cluster.procs[name].pid).children()
    except psutil.Error:
        return
    if children:
        os.kill(soak.rng.choice(children).pid, signal.SIGKILL)
        soak.note("SIGKILL pool process", name)


def stop_worker(soak: Soak, name: str) -> None:
    pid = soak.cluster.procs[name].pid
    os.killpg(pid, signal.SIGSTOP)
    soak.stopped.add(name)
    seconds = soak.args.lease_ttl * soak.rng.uniform(1.5, 3)
    soak.note("SIGSTOP worker past its lease", name, seconds=round(seconds, 1))

    def resume() -> None:
        soak.stopped.discard(name)
        os.killpg(pid, signal.SIGCONT)

    soak.later(seconds, "SIGCONT", resume)


def cut(soak: Soak, name: str, long: bool) -> None:
    ttl = soak.args.lease_ttl
    seconds = soak.rng.uniform(1.5 * ttl, 3 * ttl) if long else soak.rng.uniform(0.5, ttl / 2)
    soak.note("long network cut" if long else "short network cut", name, seconds=round(seconds, 1))
    if soak.hosts is not None:  # the host's only link goes down: packets vanish, connections hang
        hosts = soak.hosts
        hosts.link(name, up=False)
        soak.later(seconds, "link up", lambda: hosts.link(name, up=True))
        return
    soak.proxies[name].cut()
    soak.later(seconds, "restore link", soak.proxies[name].restore)


def restart_redis(soak: Soak) -> None:
    soak.redis.stop()
    time.sleep(soak.rng.uniform(0.5, 2))  # Redis is down for a while: part of the fault
    soak.redis.start()
    soak.note("Redis restarted (append-only file kept)")


def wipe_redis(soak: Soak) -> None:
    redis.Redis.from_url(soak.redis.url).flushall()
    soak.note("Redis wiped (FLUSHALL)")


def stall_pushes(soak: Soak) -> None:
    seconds = soak.args.git_timeout * soak.rng.uniform(0.5, 1.5)
    soak.stall.touch()
    soak.note("pushes to origin stalled", seconds=round(seconds, 1))
    soak.later(seconds, "unstall", lambda: soak.stall.unlink(missing_ok=True))


def fill_disk(soak: Soak) -> None:
    assert soak.disk is not None
    filler = soak.disk / "chaos-filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=1M"], capture_output=True)
    seconds = soak.rng.uniform(2, 8)
    soak.note("workdir disk full", seconds=round(seconds, 1))
    soak.later(seconds, "free disk", lambda: filler.unlink(missing_ok=True))


def inject(soak: Soak) -> None:
    workers = alive_workers(soak)
    choices: list[tuple[float, Callable[[], None]]] = [
        (1.0, lambda: restart_redis(soak)),
        (0.7, lambda: wipe_redis(soak)),
        (1.0, lambda: stall_pushes(soak)),
    ]
    if soak.disk is not None:
        choices.append((0.7, lambda: fill_disk(soak)))
    if len(workers) > 1:  # keep one worker untouched so the swarm makes progress between faults
        target = soak.rng.choice(workers)
        choices += [
            (1.5, lambda: kill_main(soak, target)),
            (1.0, lambda: kill_pool(soak, target)),
            (1.0, lambda: stop_worker(soak, target)),
            (1.0, lambda: cut(soak, target, long=False)),
            (1.0, lambda: cut(soak, target, long=True)),
        ]
    weights = [w for w, _ in choices]
    soak.rng.choices([c for _, c in choices], weights)[0]()


# --- running and checking ---


def settled(soak: Soak) -> bool:
    """Every task landed or failed (a good task that failed is counted as lost by the check)."""
    try:
        rows = soak.cluster.status()["tasks"]
    except Exception:  # noqa: BLE001 - Redis may be coming back
        return False
    return all(r["state"] in ("landed", "failed") for r in rows)


def soak_run(soak: Soak) -> None:
    for name in soak.queues:
        start_worker(soak, name)
    soak.cluster.wait_for_workers(list(soak.queues))
    soak.cluster.beat()
    end = soak.args.t0 + soak.args.duration
    next_fault = time.monotonic() + soak.rng.uniform(*soak.args.every)
    while time.monotonic() < end:
        soak.run_pending()
        if time.monotonic() >= next_fault:
            inject(soak)
            next_fault = time.monotonic() + soak.rng.uniform(*soak.args.every)
        time.sleep(0.1)
    soak.note("faults stop; settling")
    soak.run_pending(everything=True)
    deadline = time.monotonic() + soak.args.settle
    while time.monotonic() < deadline and not settled(soak):
        time.sleep(1)


def budget_overruns(records: dict[str, list[dict[str, Any]]], broken: set[str], max_attempts: int) -> list[str]:
    """Failed tasks that ran more attempts that counted than their budget (e.g. again after a Redis wipe)."""
    over = []
    for task in broken:
        history = ledger.summarize(records.get(task, [])).history
        counted = sum(1 for r in history if _counted(r) and r.get("outcome") != "landed")
        if counted > max_attempts:
            over.append(f"{task}: {counted} counted attempts")
    return over


def _counted(record: dict[str, Any]) -> bool:
    return bool(record.get("counted", record.get("counts", True)))


def wasted_seconds(records: dict[str, list[dict[str, Any]]]) -> float:
    total = 0.0
    for chain in records.values():
        for rec in ledger.summarize(chain).history:
            if rec.get("outcome") != "landed" and rec.get("reason") in INFRA_REASONS:
                total += float(rec.get("duration") or 0)
    return round(total, 1)


def check(soak: Soak) -> dict[str, Any]:
    """What git (and the host) says after the swarm stopped."""
    project = soak.project
    landed = project.landed()
    trailers = project.git("log", "--format=%(trailers:key=Swarm-Task,valueonly)", "main").split()
    # The audit re-judges every commit of main: minutes after a long soak, more than Cluster.swarm's timeout.
    audit = subprocess.run([sys.executable, "-m", "swarm", "audit", "--oracle"], cwd=project.root,
                           env=soak.cluster.env(), text=True, capture_output=True, timeout=3600)  # fmt: skip
    ids = {identity.swarm_id(load_settings(soak.cluster.config, workdir=w)) for w in workdirs(soak)}
    mirror = repo.Mirror(str(project.origin), soak.root / "check-mirror.git").ensure()
    mirror.fetch()
    records = ledger.read(mirror)
    # Every worker the soak killed was restarted when the faults stopped: one gone now died of a fault it should
    # have survived, and left its vendor queue without a consumer.
    died = sorted(n for n in soak.queues if soak.cluster.procs[n].poll() is not None)
    soak.cluster.stop()
    time.sleep(soak.args.lease_ttl + 1)  # leases of the stopped workers expire within one TTL: part of the check
    client = redis.Redis.from_url(soak.redis.url)
    leftover_worktrees = [p.name for w in workdirs(soak) for p in (w / "worktrees").glob("*")]
    return {
        "duration_s": soak.args.duration,
        "tasks": len(soak.args.good) + len(soak.args.broken),
        "workers": len(soak.queues),
        "hosts": len(soak.queues) if soak.hosts else 1,
        "faults": len([e for e in soak.log if e["fault"] not in ("worker restarted", "faults stop; settling")]),
        "landed": len(set(landed) & set(soak.args.good)),
        "tasks_lost": sorted(set(soak.args.good) - set(landed)),
        "landed_twice": sorted({t for t in trailers if trailers.count(t) > 1}),
        "broken_landed": sorted(set(soak.args.broken) & set(landed)),
        "red_commits": audit.stdout.count(": red:"),
        "audit_ok": audit.returncode == 0,
        "over_budget": budget_overruns(records, soak.args.broken, soak.args.max_attempts),
        "leftover_processes": [p for i in sorted(ids) for p in proc.marked(f"{identity.ENV}={i}")],
        "leftover_leases": sorted(k.decode() for k in client.scan_iter(match="swarm:lease:*")),
        "leftover_worktrees": leftover_worktrees,
        "workers_died": died,
        "attempts": sum(len(ledger.summarize(c).history) for c in records.values()),
        "infra_wasted_attempt_s": wasted_seconds(records),
    }


def broke(figures: dict[str, Any]) -> bool:
    keys = ("tasks_lost", "landed_twice", "broken_landed", "over_budget", "leftover_processes", "leftover_leases",
            "leftover_worktrees", "workers_died")  # fmt: skip
    return any(figures[k] for k in keys) or figures["red_commits"] > 0 or not figures["audit_ok"]


def tear_down(soak: Soak) -> None:
    """Every step runs, whatever an earlier one raised: nothing of the soak may stay behind."""
    steps: list[Callable[[], object]] = [soak.cluster.stop, *(p.close for p in soak.proxies.values()), soak.redis.stop]
    if soak.hosts is not None:
        steps.append(soak.hosts.close)
    steps.append(lambda: soak.stall.unlink(missing_ok=True))
    if soak.disk is not None:
        steps.append(lambda: subprocess.run(["umount", "-l", str(soak.disk)], capture_output=True))
    for step in steps:
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - report and go on with the rest
            print(f"tear-down step failed: {exc!r}", flush=True)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=300, help="seconds of faults (default 300)")
    p.add_argument("--tasks", type=int, default=32, help="tasks in the backlog (default 32)")
    p.add_argument("--bad", type=int, default=2, help="of which always break the oracle (default 2)")
    p.add_argument("--workers", type=int, default=3, help="worker processes (default 3)")
    p.add_argument("--lease-ttl", type=float, default=4, help="lease TTL in seconds (default 4)")
    p.add_argument("--git-timeout", type=float, default=10, help="git_timeout in seconds (default 10)")
    p.add_argument("--max-attempts", type=int, default=2)
    p.add_argument("--every", type=float, nargs=2, default=(2.0, 6.0), help="seconds between faults (min max)")
    p.add_argument("--settle", type=float, default=300, help="seconds to wait for the swarm to settle")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--disk-mb", type=int, default=64)
    p.add_argument("--no-disk-faults", dest="disk_faults", action="store_false")
    p.add_argument("--hosts", action="store_true", help="each worker on a host of its own (network namespaces)")
    p.add_argument("--keep", action="store_true", help="keep the soak's folder (logs, repos) for reading")
    args = p.parse_args(argv)
    if args.seed is None:
        args.seed = random.randrange(1_000_000)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    root = Path(tempfile.mkdtemp(prefix="swarm-chaos-"))
    print(f"chaos soak in {root} (seed {args.seed})", flush=True)
    args.t0 = time.monotonic()
    soak = set_up(args, root)
    try:
        soak_run(soak)
        figures = {"seed": args.seed, **check(soak)}
    finally:
        tear_down(soak)
        print(soak.cluster.dump_logs()[-4000:] if os.environ.get("CHAOS_LOGS") else "", flush=True)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print("chaos figures: " + json.dumps(figures), flush=True)
    return 1 if broke(figures) else 0


if __name__ == "__main__":
    sys.exit(main())
