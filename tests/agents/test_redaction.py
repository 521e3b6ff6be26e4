"""Secrets never reach a log: given values, key-shaped tokens, URL passwords."""

from __future__ import annotations

from pathlib import Path

from swarm.agents import redaction


def test_redact_hides_given_values_key_shaped_tokens_and_url_passwords() -> None:
    text = "key=s3cr3t-value-123 sk-ant-api03-abcdefghijklmnop AIzaSyA1234567890abcdefghijklmnopqrstu redis://:pw@host:6379/0"
    clean = redaction.redact(text, ["s3cr3t-value-123"])
    assert "s3cr3t" not in clean and "sk-ant" not in clean and "AIza" not in clean and ":pw@" not in clean
    assert clean.count(redaction.REDACTED) == 4


def test_secret_values_come_from_secret_looking_names_only() -> None:
    env = {"ANTHROPIC_API_KEY": "abcdefghij", "PATH": "/usr/bin:/bin", "GH_TOKEN": "short", "X_SECRET": "123456789"}
    assert redaction.secret_values(env) == ["abcdefghij", "123456789"]


def test_redact_file_rewrites_only_when_needed(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text("nothing secret\n")
    before = log.stat().st_mtime_ns
    redaction.redact_file(log, ["topsecret-1"])
    assert log.stat().st_mtime_ns == before
    log.write_text("the key is topsecret-1\n")
    redaction.redact_file(log, ["topsecret-1"])
    assert log.read_text() == f"the key is {redaction.REDACTED}\n"
    redaction.redact_file(tmp_path / "missing.log", ["x"])
