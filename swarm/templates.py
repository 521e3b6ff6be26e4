"""The project folders shipped with swarm: the engine template and the examples `swarm init`/`demo` start from."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

PACKAGE = Path(__file__).resolve().parent
DATA = PACKAGE / "_data"
"""Where a wheel carries them (copied at build time by setup.py); a source checkout has them at its root."""


def shipped(name: str) -> Path:
    """A shipped folder: the installed copy in swarm/_data, else the source checkout's own."""
    installed = DATA / name
    return installed if installed.is_dir() else PACKAGE.parent / name


ENGINE = shipped("engine_repo_template")


@dataclass(frozen=True)
class Example:
    """A project `swarm demo` builds: its starting tree and the recorded solutions the replay agent applies."""

    template: Path
    solutions: Path
    needs: str
    """What the oracle needs on PATH, for the error when it is missing."""


def examples() -> dict[str, Example]:
    from swarm.agents.replay import SHIPPED

    python = shipped("examples/python-project")
    return {
        "engine": Example(ENGINE, SHIPPED, "cargo"),
        "python": Example(python / "repo", python / "solutions", "python3 with pytest"),
    }
