"""doctor warns (never fails) when an installed CLI is older or newer than the versions its adapter was checked
against: the fake CLIs in bin/ print the version they are told to, and the real CLIs, where installed, their own."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from rich.console import Console

from swarm import doctor
from swarm.agents import registry, versions
from swarm.agents.cli_adapter import CliAgent
from tests.agents.helpers import BIN, CLIS, KEY_VARS, real_cli, root_sandbox_env

PRINTS = {"claude": "{} (Claude Code)", "codex": "codex-cli {}", "gemini": "{}"}
"""How each CLI prints its version (checked against the real ones below)."""


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in KEY_VARS:
        monkeypatch.setenv(name, f"sk-{name.lower().replace('_', '-')}-0123456789abcdef")


def fake(cli: str, version: str, monkeypatch: pytest.MonkeyPatch) -> CliAgent:
    """The fake CLI's adapter, the CLI printing `version` as the real one would."""
    monkeypatch.setenv("FAKE_CLI_VERSION", PRINTS[cli].format(version))
    env = root_sandbox_env(cli)
    agent = registry.make(cli, cli, {"binary": str(BIN / cli), "env": env, "pass_env": ["FAKE_CLI_VERSION"]})
    assert isinstance(agent, CliAgent)
    return agent


def version_check(agent: CliAgent) -> tuple[bool | None, str]:
    checks = {name: (ok, detail) for name, ok, detail in agent.check()}
    return checks[f"vendor {agent.cli} version"]


def bump(version: str) -> str:
    """The next patch release of version."""
    *head, last = version.split(".")
    return ".".join([*head, str(int(last) + 1)])


@pytest.mark.parametrize("cli", CLIS)
def test_a_cli_at_a_checked_version_passes(cli: str, monkeypatch: pytest.MonkeyPatch, keys: None) -> None:
    for version in registry.make(cli, cli, {}).checked_versions:  # type: ignore[attr-defined]
        ok, detail = version_check(fake(cli, version, monkeypatch))
        assert ok is True and f"{cli} {version}" in detail, detail


@pytest.mark.parametrize("cli", CLIS)
def test_an_older_cli_is_a_warning_naming_both_versions_and_the_install_to_run(
    cli: str, monkeypatch: pytest.MonkeyPatch, keys: None
) -> None:
    oldest, newest = registry.make(cli, cli, {}).checked_versions  # type: ignore[attr-defined]
    older = "0.0.1"
    agent = fake(cli, older, monkeypatch)
    ok, detail = version_check(agent)
    assert ok is None, "a warning, not a failure"
    assert f"{cli} {older} is older than the versions the adapter was checked against" in detail
    assert oldest in detail and newest in detail
    assert f"npm install -g {agent.package}@{newest}" in detail


@pytest.mark.parametrize("cli", CLIS)
def test_a_newer_cli_is_a_warning_saying_to_pin_or_check_the_adapter(
    cli: str, monkeypatch: pytest.MonkeyPatch, keys: None
) -> None:
    newest = registry.make(cli, cli, {}).checked_versions[1]  # type: ignore[attr-defined]
    newer = bump(newest)
    agent = fake(cli, newer, monkeypatch)
    ok, detail = version_check(agent)
    assert ok is None
    assert f"{cli} {newer} is newer than the versions the adapter was checked against" in detail
    assert f"npm install -g {agent.package}@{newest}" in detail and "checked_versions" in detail


def test_doctor_prints_the_warning_and_counts_no_failure(monkeypatch: pytest.MonkeyPatch, keys: None) -> None:
    checks = fake("codex", "0.200.0", monkeypatch).check()
    out = io.StringIO()
    failed = doctor.show(checks, Console(file=out, width=400, color_system=None))
    assert failed == 0
    assert "warn vendor codex version: codex 0.200.0 is newer than" in out.getvalue()
    assert "ok   vendor codex flags" in out.getvalue(), "the other checks are still made"


def test_a_cli_that_prints_no_version_is_a_warning_not_a_crash(monkeypatch: pytest.MonkeyPatch, keys: None) -> None:
    ok, detail = version_check(fake("gemini", "unknown", monkeypatch))
    assert ok is None and "printed no version" in detail


@pytest.mark.parametrize(
    ("printed", "parsed"),
    [("2.1.332 (Claude Code)", (2, 1, 332)), ("codex-cli 0.171.0", (0, 171, 0)), ("0.61.0", (0, 61, 0)),
     ("0.45.0-nightly.20260529.gc82e2b597", (0, 45, 0)), ("no version here", None)],
)  # fmt: skip
def test_version_lines_are_read_as_numbers(printed: str, parsed: tuple[int, ...] | None) -> None:
    assert versions.parse(printed) == parsed
    assert versions.parse("0.100.0") > versions.parse("0.99.9")  # type: ignore[operator]


# --- the real CLIs, where installed (.ci/run puts the pinned ones on PATH) ---


@pytest.mark.parametrize("cli", CLIS)
def test_doctor_compares_the_real_clis_own_version_with_the_checked_ones(cli: str, keys: None, tmp_path: Path) -> None:
    if shutil.which(cli) is None:
        pytest.skip(f"{cli} is not installed")
    env = {**os.environ, "HOME": str(tmp_path)}  # the CLI may write its config: not to the user's home
    printed = subprocess.run([cli, "--version"], capture_output=True, text=True, timeout=60, env=env,
                             stdin=subprocess.DEVNULL).stdout.strip().splitlines()[-1]  # fmt: skip
    installed = versions.parse(printed)
    assert installed is not None and printed == PRINTS[cli].format(".".join(map(str, installed))), printed
    agent = real_cli(cli)
    assert isinstance(agent, CliAgent)
    ok, detail = version_check(agent)
    oldest, newest = (versions.parse(v) for v in agent.checked_versions)
    assert oldest is not None and newest is not None
    assert ok is (True if oldest <= installed <= newest else None), detail
    assert ".".join(map(str, installed)) in detail
    if os.environ.get("CI") == "true":
        assert ok is True, f"CI installs the pinned {cli}, which must be a checked version: {detail}"
