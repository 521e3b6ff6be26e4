"""The processes of a swarm on one machine (embedded Redis, a worker per vendor, beat, Flower) and their supervisor.

Every process starts through `proc.start_service`, in its own session, so stopping the swarm takes down everything
it started, agents too. honcho (which runs the Procfile) is not used here: its Manager blocks the main thread in
its own loop, installs its own signal handlers and prints every line to stdout, while `swarm up` and `swarm demo`
need the main thread for their live view and must stop the swarm on their own terms.
"""

from __future__ import annotations

import logging
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path

from swarm import proc
from swarm.embedded import EmbeddedRedis, free_port
from swarm.errors import SwarmError
from swarm.settings import Settings, config_file

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


def worker_slots(spec: str, settings: Settings) -> dict[str, int]:
    """Slots per vendor from `--workers claude=2,codex=1`; each vendor's concurrency (or 1) when empty."""
    if not settings.vendors:
        raise SwarmError(
            f"no vendors in {config_file()}: add a [vendors.<name>] table (see README), or try `swarm demo`"
        )
    if not spec:
        return {name: v.concurrency or 1 for name, v in settings.vendors.items()}
    slots = {}
    for part in spec.split(","):
        name, _, count = part.partition("=")
        if name not in settings.vendors or not count.isdigit() or int(count) < 1:
            raise SwarmError(f"--workers {part!r}: expected <vendor>=<slots> with a configured vendor "
                             f"({', '.join(settings.vendors)}) and slots >= 1")  # fmt: skip
        slots[name] = int(count)
    return slots


def refuse_missing_vendors(settings: Settings, slots: dict[str, int]) -> None:
    """`swarm up` starts no worker whose agent could only fail: its CLI or its API key missing."""
    from swarm import doctor as doctor_mod

    problems = [
        f"{name}: {detail}" for name, ok, detail in doctor_mod.vendor_checks(settings, list(slots)) if ok is False
    ]
    if problems:
        raise SwarmError(
            "cannot start these vendors:\n  " + "\n  ".join(problems) + "\nRun `swarm doctor` for what to fix, "
            "or `swarm demo` to see the swarm work with no agent CLI or API key."
        )


@dataclass
class Supervisor:
    """Runs a set of services with a shared environment; `stop()` ends them all, whatever state they are in."""

    logs: Path
    env: dict[str, str]
    cwd: Path
    running: list[proc.Service] = field(default_factory=list)
    redis: EmbeddedRedis | None = None

    def start_redis(self, folder: Path) -> str:
        self.redis = EmbeddedRedis(folder, persist=True).start()
        return self.redis.url

    def start(self, process: Process) -> None:
        log_path = self.logs / f"{process.name}.log"
        service = proc.start_service(process.name, process.argv, cwd=self.cwd, env=self.env, log_path=log_path)
        self.running.append(service)

    def dead(self) -> list[str]:
        return [service.name for service in self.running if not service.running()]

    def stop(self) -> None:
        """Stop every service (warm shutdown first, then SIGKILL), then Redis."""
        proc.stop_services(self.running, STOP_GRACE)
        self.running.clear()
        if self.redis is not None:
            self.redis.stop()
            self.redis = None


def flower_credentials() -> tuple[str, str]:
    return "swarm", secrets.token_urlsafe(12)


__all__ = ["Process", "Supervisor", "plan", "flower_credentials", "free_port"]
