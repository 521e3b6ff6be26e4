"""Adapters by name: the `adapter = "..."` of a vendor table picks one of these, or names a class of its own as
a dotted path, `adapter = "mypkg.agents:MyAgent"` (an importable module, a colon, a class with `Options`)."""

from __future__ import annotations

import importlib
from typing import Any

from pydantic import BaseModel, ValidationError

from swarm.agents.base import Agent

ADAPTERS: dict[str, str] = {
    "command": "swarm.agents.command:CommandAgent",
    "replay": "swarm.agents.replay:ReplayAgent",
    "claude": "swarm.agents.claude:ClaudeAgent",
    "codex": "swarm.agents.codex:CodexAgent",
    "gemini": "swarm.agents.gemini:GeminiAgent",
}


def adapter_class(adapter: str) -> type[Any]:
    """Import an adapter class by its registered name or its dotted path `module:Class`."""
    if adapter not in ADAPTERS and ":" not in adapter:
        known = ", ".join(sorted(ADAPTERS))
        raise ValueError(f"unknown adapter {adapter!r} (known: {known}; or a dotted path such as mypkg.mod:MyAgent)")
    module, _, name = ADAPTERS.get(adapter, adapter).partition(":")
    try:
        cls = getattr(importlib.import_module(module), name)
    except ImportError as exc:
        raise ValueError(f"adapter {adapter!r}: cannot import {module!r} ({exc})") from None
    except AttributeError:
        raise ValueError(f"adapter {adapter!r}: module {module!r} has no class {name!r}") from None
    missing = [m for m in ("Options", "run", "executable") if not hasattr(cls, m)]
    if missing:
        raise ValueError(f"adapter {adapter!r} is not an Agent: it has no {', '.join(missing)}")
    return cls  # type: ignore[no-any-return]


def validate_options(vendor: str, adapter: str, options: dict[str, Any]) -> BaseModel:
    """Check a vendor table's adapter options; errors name `vendors.<vendor>.<option>`."""
    try:
        cls = adapter_class(adapter)
    except ValueError as exc:
        raise ValueError(f"vendors.{vendor}.adapter: {exc}") from None
    try:
        return cls.Options.model_validate(options)  # type: ignore[no-any-return]
    except ValidationError as exc:
        problems = "; ".join(
            f"vendors.{vendor}.{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise ValueError(problems) from None


def make(vendor: str, adapter: str, options: dict[str, Any]) -> Agent:
    """Build the adapter of one vendor from its validated options."""
    cls = adapter_class(adapter)
    return cls(vendor, validate_options(vendor, adapter, options))  # type: ignore[no-any-return]
