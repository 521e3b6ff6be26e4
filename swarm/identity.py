"""Who this swarm is on a host: the id that scopes start-up sweeps to the processes of this swarm only."""

from __future__ import annotations

import hashlib
import logging

from swarm.repo import absolute_origin
from swarm.settings import Settings

log = logging.getLogger(__name__)

ENV = "SWARM_SWARM"
"""Environment variable carried by every agent and oracle process of a swarm: its swarm id."""


def swarm_id(settings: Settings) -> str:
    """The same for every worker of one swarm on a host (one origin, one workdir), different for any other swarm."""
    origin = absolute_origin(settings.origin or "")
    return hashlib.sha256(f"{origin}\0{settings.workdir.resolve()}".encode()).hexdigest()[:12]


def marker(settings: Settings) -> dict[str, str]:
    """The environment entry that marks a process as this swarm's."""
    return {ENV: swarm_id(settings)}
