"""Isolation that holds: every run gets an empty private temp folder of its slot (never the shared /tmp), and the
agent's own memory does not carry from one task to the next unless a vendor asks for it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.agents.helpers import KEY_VARS, agent_run, fake_cli, script


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in KEY_VARS:
        monkeypatch.setenv(name, f"sk-{name.lower().replace('_', '-')}-0123456789abcdef")


@pytest.mark.parametrize("cli", ["claude", "codex", "gemini"])
def test_each_run_gets_an_empty_private_temp_folder_of_its_slot(cli: str, tmp_path: Path, keys: None) -> None:
    record = tmp_path / "record.jsonl"
    agent = fake_cli(cli, env={"FAKE_CLI_RECORD": str(record)})
    run = agent_run(tmp_path, script("write src/a.txt a"))
    (run.home / "tmp").mkdir(parents=True)
    (run.home / "tmp" / "left-by-the-last-task.txt").write_text("prompt context")
    assert agent.run(run).outcome == "ok"
    env = json.loads(record.read_text())["env"]
    tmp = Path(env["TMPDIR"])
    assert tmp == run.home / "tmp" and env["TMP"] == env["TEMP"] == str(tmp)
    assert list(tmp.iterdir()) == [], "nothing of the previous run is left"
    assert tmp.stat().st_mode & 0o777 == 0o700


def test_claude_auto_memory_is_off_and_forgotten_between_tasks_unless_configured(tmp_path: Path, keys: None) -> None:
    record = tmp_path / "record.jsonl"
    run = agent_run(tmp_path)
    memory = run.home / "claude" / "projects" / "-srv-swarm-mirror" / "memory"
    memory.mkdir(parents=True)
    (memory / "MEMORY.md").write_text("what the last task learnt")
    assert fake_cli("claude", env={"FAKE_CLI_RECORD": str(record)}).run(run).outcome == "ok"
    assert not memory.exists()
    assert json.loads(record.read_text())["env"]["CLAUDE_CODE_DISABLE_AUTO_MEMORY"] == "1"
    memory.mkdir(parents=True)
    (memory / "MEMORY.md").write_text("kept")
    record.unlink()
    assert fake_cli("claude", memory=True, env={"FAKE_CLI_RECORD": str(record)}).run(run).outcome == "ok"
    assert (memory / "MEMORY.md").read_text() == "kept"
    assert "CLAUDE_CODE_DISABLE_AUTO_MEMORY" not in json.loads(record.read_text())["env"]


def test_gemini_global_memory_file_is_forgotten_between_tasks(tmp_path: Path, keys: None) -> None:
    run = agent_run(tmp_path)
    memory = run.home / "gemini" / ".gemini" / "GEMINI.md"
    memory.parent.mkdir(parents=True)
    memory.write_text("## Gemini Added Memories\n- the last task's secret")
    assert fake_cli("gemini").run(run).outcome == "ok"
    assert not memory.exists()
