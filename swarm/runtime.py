"""The collaborators one process works with, built once from the settings and handed to everything else:
the Redis doors (never the raw client), this host's mirror of origin, and the events."""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from swarm.baselines import Baselines
from swarm.book import AttemptBook
from swarm.coordination import open_client
from swarm.errors import SettingsError
from swarm.events import Events, Hook
from swarm.leases import Leases
from swarm.marks import QueueMarks
from swarm.quota import VendorLedger
from swarm.repo import Mirror
from swarm.settings import Settings
from swarm.slots import SlotBoard
from swarm.train import Train

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    mirror: Mirror
    leases: Leases
    book: AttemptBook
    marks: QueueMarks
    baselines: Baselines
    ledger: VendorLedger
    slots: SlotBoard
    train: Train
    events: Events

    @property
    def workdir(self) -> Path:
        return self.settings.workdir.resolve()

    def judge_seed(self) -> str:
        """The swarm-wide secret seed of the judge's variants: the setting, else one made once and kept in Redis."""
        return self.settings.judge_secret or self.baselines.judge_seed()


def connect(settings: Settings, hook: Hook | None = None) -> Runtime:
    """Connect to Redis and set up this host's mirror of origin."""
    settings.require("redis_url", "origin")
    assert settings.redis_url is not None and settings.origin is not None
    # A call to an unreachable Redis must fail well within a lease TTL (the heartbeat uses a shorter one still).
    client = open_client(settings.redis_url, timeout=max(0.5, min(10.0, settings.lease_ttl / 3)))
    path = usable_workdir(settings) / "mirror.git"
    mirror = Mirror(settings.origin, path, settings.branch, settings.git_timeout).ensure()
    return Runtime(
        settings=settings,
        mirror=mirror,
        leases=Leases(client),
        book=AttemptBook(client, settings.max_attempts),
        marks=QueueMarks(client),
        baselines=Baselines(client),
        ledger=VendorLedger(client),
        slots=SlotBoard(client),
        train=Train(client, mirror, settings.train_window, settings.lease_ttl, settings.train_batch),
        events=Events(client, hook),
    )


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
