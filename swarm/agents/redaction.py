"""Hiding secrets in what the agent CLIs print: the run's own key values, key-shaped tokens, URL passwords."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

REDACTED = "[REDACTED]"

# Names whose values are secrets wherever they appear; values of any *_KEY/*_TOKEN/... variable are also hidden.
SECRET_NAMES = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|REDIS_URL)$")
_TOKENS = re.compile(r"\b(sk-[A-Za-z0-9_-]{16,}|AIza[0-9A-Za-z_-]{30,}|gh[pousr]_[A-Za-z0-9]{30,})")
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)([^@\s]+)(@)")


def secret_values(env: Mapping[str, str]) -> list[str]:
    """Values of the secret-looking variables of an environment (long enough not to be ordinary words)."""
    return sorted({v for k, v in env.items() if SECRET_NAMES.search(k) and len(v) >= 8}, key=len, reverse=True)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Hide the given secret values, API-key-shaped tokens and passwords in URLs."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    text = _TOKENS.sub(REDACTED, text)
    return _URL_PASSWORD.sub(rf"\g<1>{REDACTED}\g<3>", text)


def redact_file(path: Path, secrets: Iterable[str] = ()) -> None:
    """Rewrite a log the CLI wrote itself, with its secrets hidden (left alone when there is nothing to hide)."""
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return
    clean = redact(text, secrets)
    if clean != text:
        path.write_text(clean)
