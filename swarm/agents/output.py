"""Reading what a CLI printed, leniently: JSON lines, JSON objects amid text, the end of a log, numbers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from swarm import proc
from swarm.agents.base import AgentResult

MESSAGE_LIMIT = 600


def events(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSON-lines log, one per line; lines that are not a JSON object are skipped."""
    if not path.is_file():
        return
    with open(path, "rb") as f:
        for raw in f:
            line = raw.decode("utf-8", errors="replace").strip()
            if not line.startswith("{"):
                continue
            try:
                value = json.loads(line)
            except ValueError:
                continue  # a truncated last line, or the CLI printed something odd
            if isinstance(value, dict):
                yield value


def json_objects(text: str) -> list[dict[str, Any]]:
    """Every JSON object found in free text (gemini pretty-prints its fatal error amid other stderr lines)."""
    decoder = json.JSONDecoder()
    found: list[dict[str, Any]] = []
    start = text.find("{")
    while start != -1:
        try:
            value, end = decoder.raw_decode(text, start)
        except ValueError:
            start = text.find("{", start + 1)
            continue
        if isinstance(value, dict):
            found.append(value)
        start = text.find("{", end)
    return found


def read_text(path: Path, max_bytes: int = 16 * 1024) -> str:
    """The end of a log, decoded leniently."""
    return proc.tail(path, max_bytes)


def last_lines(text: str, count: int = 3) -> str:
    """The last few non-blank lines of a text, for a failure message (stack-trace frames left out)."""
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("at ")]
    return " | ".join(lines[-count:])


def number(value: Any) -> int | None:
    """An int from a JSON value, or None when it is missing or not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def shorten(text: str, limit: int = MESSAGE_LIMIT) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def usage_fields(result: AgentResult, input_tokens: int | None, cached: int | None, output: int | None) -> None:
    result.input_tokens, result.cached_tokens, result.output_tokens = input_tokens, cached, output
