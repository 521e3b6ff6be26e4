"""Starts and stops the swarm's processes on one machine: embedded Redis, workers per vendor, beat, Flower.

Each process runs in its own session so that stopping the swarm takes down everything it started, agents too.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from swarm.embedded import EmbeddedRedis, free_port
from swarm.settings import Settings

log = logging.getLogger(__name__)

STOP_GRACE = 15.0


@dataclass(frozen=True)
class Process:
    name: str
    argv: list[str]


def celery(*args: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "swarm", *args]


def plan(settings: Settings, workers: dict[str, int], flower_port: int | None) -> list[Process]:
    """The processes of a one-machine swarm: a worker per vendor (with its slots), one beat, optionally Flower."""
    procs = []
    for vendor, slots in workers.items():
        argv = celery("worker", "-Q", vendor, "-c", str(slots), "-n", f"{vendor}@%h", "--loglevel=INFO")
        procs.append(Process(f"worker-{vendor}", argv))
    # Every worker also takes control tasks, but all of them may be busy with hour-long attempts: one small
    # worker on the control queue alone keeps the reaper and dispatch running within seconds.
    control = settings.control_queue
    procs.append(
        Process("control", celery("worker", "-Q", control, "-c", "1", "-n", f"{control}@%h", "--loglevel=INFO"))
    )
    schedule = settings.workdir.resolve() / "celerybeat-schedule"
    procs.append(Process("beat", celery("beat", "-s", str(schedule), "--loglevel=INFO")))
    if flower_port is not None:
        procs.append(Process("flower", celery("flower", "--address=127.0.0.1", f"--port={flower_port}")))
    return procs


@dataclass
class Supervisor:
    """Runs a set of processes with a shared environment; `stop()` ends them all, whatever state they are in."""

    logs: Path
    env: dict[str, str]
    cwd: Path
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    redis: EmbeddedRedis | None = None

    def start_redis(self, folder: Path) -> str:
        self.redis = EmbeddedRedis(folder, persist=True).start()
        return self.redis.url

    def start(self, proc: Process) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(self.logs / f"{proc.name}.log", "ab") as out:
            self.running[proc.name] = subprocess.Popen(
                proc.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def dead(self) -> list[str]:
        return [name for name, p in self.running.items() if p.poll() is not None]

    def stop(self) -> None:
        """SIGTERM every process group (Celery's warm shutdown), then SIGKILL what is left, then Redis."""
        for proc in self.running.values():
            _signal(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for proc in self.running.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("process %d did not stop in %.0fs; killing it", proc.pid, STOP_GRACE)
            _signal(proc.pid, signal.SIGKILL)
            proc.wait()
        self.running.clear()
        if self.redis is not None:
            self.redis.stop()
            self.redis = None


def _signal(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def flower_credentials() -> tuple[str, str]:
    return "swarm", secrets.token_urlsafe(12)


__all__ = ["Process", "Supervisor", "plan", "flower_credentials", "free_port"]
