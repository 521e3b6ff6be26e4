"""Secrets out of what the swarm shows: passwords in URLs (Redis, origin) never reach a log line or the terminal."""

from __future__ import annotations

import logging
import re

log = logging.getLogger(__name__)

MASK = "***"
# scheme://user:password@ or scheme://:password@ (Redis URLs usually have no user name)
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]*:)(?P<secret>[^\s@/]+)@")


def redact(text: str) -> str:
    """`text` with the password of every URL in it replaced by ***: a bare URL or a message quoting one."""
    return _URL_PASSWORD.sub(rf"\g<head>{MASK}@", text)


class RedactingFilter(logging.Filter):
    """Redacts URL passwords in every record of the handler it is added to (its message and arguments)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.msg = record.getMessage()
            record.args = None
        record.msg = redact(str(record.msg))
        return True


def redact_logging(logger: logging.Logger | None = None) -> None:
    """Add the redacting filter to every handler of `logger` (the root logger when None)."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
