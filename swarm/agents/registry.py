"""Adapters by name: the `adapter = "..."` of a vendor table picks one of these."""

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
    """Import an adapter class by its registered name."""
    if adapter not in ADAPTERS:
        known = ", ".join(sorted(ADAPTERS))
        raise ValueError(f"unknown adapter {adapter!r} (known: {known})")
    module, _, name = ADAPTERS[adapter].partition(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


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
