"""Real Celery worker and beat processes against a test project, for the end-to-end tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil

from swarm import proc
from tests.conftest import SCRIPTED_AGENT, Project, clean_env, wait_for

REPO_ROOT = Path(__file__).resolve().parent.parent


def write_config(project: Project, redis_url: str, vendors: dict[str, int | None], **extra: object) -> Path:
    command = json.dumps([sys.executable, str(SCRIPTED_AGENT), "{prompt_file}"])
    lines = [
        f'redis_url = "{redis_url}"',
        f'origin = "{project.origin}"',
        f'workdir = "{project.workdir}"',
    ]
    values = {"lease_ttl": 3, "max_attempts": 2, "dispatch_interval": 1, "agent_timeout": 60, "oracle_timeout": 60}
    values.update(extra)  # type: ignore[arg-type]
    lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    for name, concurrency in vendors.items():
        lines += ["", f"[vendors.{name}]", 'adapter = "command"', f"command = {command}"]
        lines += [f"sandbox_rw = {json.dumps([str(project.signals)])}"]
        lines += [f"concurrency = {concurrency}"] if concurrency else []  # None: no cap, live slots only
    path = project.root / "swarm.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


class Cluster:
    """Starts workers and beat as separate process groups; stops every one of them at the end."""

    def __init__(self, project: Project, config: Path) -> None:
        self.project = project
        self.config = config
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.services: list[proc.Service] = []
        self.logs = project.root / "logs"
        self.logs.mkdir(exist_ok=True)

    def env(self) -> dict[str, str]:
        env = clean_env()
        env.update(SWARM_CONFIG=str(self.config), PYTHONPATH=str(REPO_ROOT))
        return env

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start a long-lived process the way `swarm up` does (proc.start_service: own session, log file)."""
        service = proc.start_service(name, argv, cwd=self.project.root, env={**self.env(), **(env or {})},
                                     log_path=self.logs / f"{name}.log")  # fmt: skip
        self.services.append(service)
        self.procs[name] = service.popen
        return service.popen

    def worker(self, name: str, queue: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        argv = [sys.executable, "-m", "celery", "-A", "swarm", "worker", "-Q", queue, "-c", "1", "-n", f"{name}@%h"]
        return self.start(name, argv + ["--loglevel=INFO", "--without-gossip", "--without-mingle"], env)

    def lease_holder(self, task_id: str) -> int | None:
        """Pid of the pool process holding the task's lease, from `swarm status`."""
        lease = self.status()["leases"].get(task_id)
        return int(lease["worker"].rsplit("-", 1)[1]) if lease else None

    def worker_of(self, pid: int) -> str:
        """Name of the worker whose pool process is `pid`."""
        parent = psutil.Process(pid).ppid()
        return next(name for name, p in self.procs.items() if p.pid in (pid, parent))

    def beat(self) -> subprocess.Popen[bytes]:
        schedule = str(self.project.root / "beat-schedule")
        return self.start(
            "beat", [sys.executable, "-m", "celery", "-A", "swarm", "beat", "-s", schedule, "--loglevel=INFO"]
        )

    def swarm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "swarm", *args], cwd=self.project.root, env=self.env(), text=True,
            capture_output=True, check=check, timeout=120,
        )  # fmt: skip

    def status(self) -> dict[str, Any]:
        return dict(json.loads(self.swarm("status", "--json").stdout))

    def wait_for_workers(self, names: list[str], timeout: float = 60) -> None:
        wait_for(
            lambda: all(b"ready." in (self.logs / f"{n}.log").read_bytes() for n in names), timeout, "workers ready"
        )

    def stop(self) -> None:
        """Warm shutdown of every process (stopped ones are continued first), SIGKILL after 10 s."""
        proc.stop_services(self.services, grace=10)

    def dump_logs(self) -> str:
        return "\n".join(
            f"===== {p.name}\n{p.read_text(errors='replace')[-6000:]}" for p in sorted(self.logs.glob("*"))
        )
