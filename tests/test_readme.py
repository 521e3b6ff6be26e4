"""The README stays true: every setting documented, the quick start's commands exist, CI runs the test command."""

from __future__ import annotations

import re
from pathlib import Path

from swarm.agents import registry
from swarm.settings import OracleSettings, RepoSettings, Settings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def documented() -> set[str]:
    return set(re.findall(r"^\| `([a-z_.]+)` \|", README, re.MULTILINE))


def test_every_setting_is_documented() -> None:
    names = documented()
    assert set(Settings.model_fields) <= names, set(Settings.model_fields) - names
    assert set(RepoSettings.model_fields) - {"oracle"} <= names
    assert {f"oracle.{n}" for n in OracleSettings.model_fields} <= names


def test_every_adapter_is_documented() -> None:
    assert set(registry.ADAPTERS) <= documented()


def test_quick_start_is_two_make_targets_and_ci_runs_the_test_one() -> None:
    block = README.split("## Quick start", 1)[1].split("```", 2)[1]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo: install\n\t\$\(BIN\)/swarm demo$", makefile, re.MULTILINE)
    assert re.search(r"^test: install\n", makefile, re.MULTILINE)
    assert "make test" in (ROOT / ".ci" / "run").read_text()
