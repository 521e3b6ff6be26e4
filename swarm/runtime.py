"""The collaborators one process works with, built once from the settings and handed to everything else."""

from __future__ import annotations

import logging
import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

import redis

from swarm import keys
from swarm.errors import SettingsError
from swarm.events import Events, Hook
from swarm.leases import Leases
from swarm.repo import Mirror
from swarm.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    redis: redis.Redis
    leases: Leases
    mirror: Mirror
    events: Events

    @property
    def workdir(self) -> Path:
        return self.settings.workdir.resolve()

    def judge_seed(self) -> str:
        """The swarm-wide secret seed of the judge's variants: the setting, else one made once and kept in Redis."""
        if self.settings.judge_secret:
            return self.settings.judge_secret
        self.redis.set(keys.JUDGE_SEED, secrets.token_hex(16), nx=True)
        return keys.text(self.redis.get(keys.JUDGE_SEED) or b"")


def connect(settings: Settings, hook: Hook | None = None) -> Runtime:
    """Connect to Redis and set up this host's mirror of origin."""
    settings.require("redis_url", "origin")
    assert settings.redis_url is not None and settings.origin is not None
    # A call to an unreachable Redis must fail well within a lease TTL, so the heartbeat can decide in time.
    timeout = max(0.5, min(10.0, settings.lease_ttl / 3))
    client = redis.Redis.from_url(
        settings.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout, health_check_interval=30
    )
    path = usable_workdir(settings) / "mirror.git"
    mirror = Mirror(settings.origin, path, settings.branch, settings.git_timeout).ensure()
    return Runtime(settings, client, Leases(client), mirror, Events(client, hook))


def usable_workdir(settings: Settings) -> Path:
    """The work directory, created if needed; a clear error naming the setting when it cannot be used."""
    path = settings.workdir.resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".swarm-probe-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise SettingsError(f"setting 'workdir' ({path}, SWARM_WORKDIR): cannot create or write it: {exc}") from None
    return path


def worker_id() -> str:
    """This process's name in leases, logs and the oracle's sample seed."""
    return f"{socket.gethostname()}-{os.getpid()}"
