"""One function masks URL passwords wherever the swarm shows a URL: a bare URL, a message, a log record."""

from __future__ import annotations

import logging

import pytest

from swarm.redact import RedactingFilter, redact


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("redis://:pw@host:6379/0", "redis://:***@host:6379/0"),
        (
            "rediss://default:p%40ss@h:6380/1?ssl_cert_reqs=required",
            "rediss://default:***@h:6380/1?ssl_cert_reqs=required",
        ),
        (
            "cannot reach redis://u:pw@a:1/0 nor https://bot:tok@github.com/o/r.git",
            "cannot reach redis://u:***@a:1/0 nor https://bot:***@github.com/o/r.git",
        ),
        ("redis://host:6379/0", "redis://host:6379/0"),
        ("git@github.com:owner/repo.git", "git@github.com:owner/repo.git"),
        ("unix:///run/redis.sock", "unix:///run/redis.sock"),
    ],
)
def test_redact_masks_only_the_password(text: str, shown: str) -> None:
    assert redact(text) == shown


def test_a_log_record_with_a_url_argument_is_redacted() -> None:
    record = logging.LogRecord("swarm", logging.INFO, __file__, 1, "connecting to %s", ("redis://:pw@h:1/0",), None)
    assert RedactingFilter().filter(record)
    assert record.getMessage() == "connecting to redis://:***@h:1/0"
