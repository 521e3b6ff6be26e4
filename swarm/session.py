"""A swarm session on this machine, for `swarm up` and `swarm demo`: start the processes, show progress, stop."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from swarm import launch
from swarm import watch as live_view
from swarm.environ import swarm_process_env
from swarm.runtime import Runtime, connect
from swarm.settings import Settings, load_settings, record_redis_url, recorded_redis_url

log = logging.getLogger(__name__)
console = Console(soft_wrap=True)

TERMINAL = ("landed", "failed", "invalid")


@dataclass
class Started:
    settings: Settings
    rt: Runtime
    supervisor: launch.Supervisor
    flower_url: str | None
    flower_auth: tuple[str, str] | None


def child_environment(config: Path, redis_url: str, flower_auth: tuple[str, str] | None) -> dict[str, str]:
    """The swarm's processes see the deployment through SWARM_CONFIG and SWARM_REDIS_URL, nothing inherited."""
    env = swarm_process_env(config, redis_url)
    if flower_auth:
        env["FLOWER_BASIC_AUTH"] = f"{flower_auth[0]}:{flower_auth[1]}"
    return env


@contextmanager
def started(config: Path, workers: dict[str, int], flower: bool = True) -> Iterator[Started]:
    """Start Redis (embedded unless redis_url is set), workers, beat and Flower; stop all of them on the way out."""
    record_redis_url(config, None)  # a URL left by a session that was killed names a Redis that is gone
    settings = load_settings(config)
    root = config.resolve().parent
    supervisor = launch.Supervisor(settings.workdir.resolve() / "logs" / "processes", {}, root)
    redis_url: str | None = None
    with interrupt_on_signals():
        try:
            redis_url = settings.redis_url or supervisor.start_redis(settings.workdir.resolve() / "redis")
            if redis_url != settings.redis_url:  # embedded: `swarm status` and the others run here find it
                recorded = record_redis_url(config, redis_url)
                console.print(f"redis: {redis_url} (recorded in {recorded} for swarm commands run in {root})")
            settings = load_settings(config, redis_url=redis_url)
            auth = launch.flower_credentials() if flower else None
            port = launch.free_port() if flower else None
            supervisor.env = child_environment(config, redis_url, auth)
            for proc in launch.plan(settings, workers, port):
                supervisor.start(proc)
            url = f"http://127.0.0.1:{port}" if port else None
            yield Started(settings, connect(settings), supervisor, url, auth)
        finally:
            supervisor.stop()
            if redis_url is not None and recorded_redis_url(config) == redis_url:
                record_redis_url(config, None)


@contextmanager
def interrupt_on_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP stop a session the way Ctrl-C does, so every process it started is stopped."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def watch(s: Started, done: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
    """Show tasks and workers until `done(report)` or the timeout; returns the last status report."""

    def alive() -> None:
        dead = s.supervisor.dead()
        if dead:
            raise RuntimeError(f"process(es) {', '.join(dead)} exited; see their logs in {s.supervisor.logs}")

    return live_view.run(s.rt, console, None, None, until=done, timeout=timeout, only=s.settings.only_tasks,
                         check=alive)  # fmt: skip


def oracle_of(rt: Runtime, commit: str) -> dict[str, Any] | None:
    counts = rt.baselines.get(commit)
    return counts.to_dict() if counts is not None else None


def landed_commits(rt: Runtime, first: str) -> list[dict[str, str]]:
    """Commits on main after `first`, with their trailers: the swarm's work."""
    rt.mirror.fetch()
    trailer = "%(trailers:key={},valueonly,separator=)"
    fmt = "%x00".join(["%H", trailer.format("Swarm-Task"), trailer.format("Swarm-Agent"), "%s"])
    out = []
    for line in rt.mirror.log(f"{first}..{rt.mirror.main()}", fmt):
        sha, task, agent, subject = line.split("\0")
        out.append({"commit": sha, "task": task.strip(), "agent": agent.strip(), "subject": subject})
    return out
