"""A cut claude run is continued by the next attempt on its slot with `--resume <session>`, in the folder the session
worked in (the CLIs find a transcript by it); on another slot the work goes on in a new session. Fake CLIs stand in
for the vendors' intelligence; Redis, git, the sandbox and the pipeline are real."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from swarm import views
from swarm.agents.base import AgentRun
from swarm.agents.claude import ClaudeAgent, ClaudeOptions
from swarm.agents.codex import CodexAgent, CodexOptions
from swarm.agents.gemini import GeminiAgent, GeminiOptions
from swarm.runtime import connect
from tests.agents.test_adapters_e2e import keys_set, pipeline, vendors
from tests.conftest import Project, make_settings, task_file

__all__ = ["keys_set"]  # a fixture the tests here use

SESSION = "5b0c1f9e-6a53-4d0e-9a57-1f6e7f3c2d10"
"""The session id of the init event in tests/data/agent_outputs/claude_progress.out."""
# Attempt 1 writes a file, starts its session (init and a first assistant message), then hangs past its timeout.
CUT = "@1 write src/alpha.txt alpha\n@1 emit claude_progress.out\n@1 sleep 60\n@2 write src/beta.txt beta"


@pytest.mark.parametrize(("slot", "transcript"), [("w1", True), ("w1", False), ("w2", True)])
def test_a_cut_claude_session_is_resumed_on_its_slot_and_its_work_kept_on_any(
    slot: str, transcript: bool, project: Project, redis_url: str, tmp_path: Path, keys_set: dict[str, str]
) -> None:
    record = tmp_path / "shared" / "record.jsonl"
    record.parent.mkdir()
    rt = connect(make_settings(project, redis_url, vendors=vendors(record, claude=3.0)))
    project.add_tasks({"cut": task_file("Cut", CUT)})
    assert pipeline(rt, "w1").run("cut", "claude") == "rejected"
    first = rt.book.history("cut")[-1]
    assert first.reason == "agent_timeout" and first.wip is not None and first.wip["session"] == SESSION
    assert first.agent is not None and first.agent["models"] == ["claude-sonnet-4-5"], "models of a cut run"
    kept = list(rt.settings.workdir.glob(f"homes/claude-w1/claude/projects/*/{SESSION}.jsonl"))
    assert kept, "the fake claude keeps its transcript as claude does"
    if not transcript:  # the slot's home was wiped: resuming a session it lacks would fail the run
        kept[0].unlink()

    assert pipeline(rt, slot).run("cut", "claude") == "landed"
    assert project.show("src/alpha.txt") == "alpha" and project.show("src/beta.txt") == "beta"
    runs = [json.loads(line) for line in record.read_text().splitlines()]
    argv = runs[-1]["argv"]
    if transcript and slot == "w1":  # the transcript is in this slot's home: the session goes on, in its folder
        assert argv[argv.index("--resume") + 1] == SESSION
        assert runs[-1]["cwd"] == runs[0]["cwd"]
        assert rt.book.history("cut")[-1].resumed == {"from": first.wip["commit"], "session": SESSION}
    else:  # no transcript of it here: a new session, with the work in the tree
        assert "--resume" not in argv and runs[-1]["cwd"] != runs[0]["cwd"]
        assert rt.book.history("cut")[-1].resumed == {"from": first.wip["commit"]}

    console = Console(record=True, width=300)
    views.print_history(console, "cut", [r.to_dict() for r in rt.book.history("cut")])
    text = console.export_text()
    assert f"work kept as {first.wip['commit'][:12]} with session {SESSION}" in text
    assert "models claude-sonnet-4-5" in text and f"resumed {first.wip['commit'][:12]}" in text
    assert ("session " + SESSION if transcript and slot == "w1" else "new session") in text


def run_of(tmp_path: Path, resume: str | None) -> AgentRun:
    return AgentRun("t", 2, "v", tmp_path / "p.md", tmp_path, tmp_path / "l.log", tmp_path, 10.0, {}, resume=resume)


def test_codex_resumes_with_its_exec_resume_subcommand(tmp_path: Path) -> None:
    agent = CodexAgent("codex", CodexOptions())
    argv = agent.argv(run_of(tmp_path, "0199-thread"), "go on")
    assert argv[argv.index("resume") :] == ["resume", "0199-thread", "--", "go on"]
    assert argv.index("-C") < argv.index("resume"), "exec's options come before its subcommand"
    assert "resume" not in agent.argv(run_of(tmp_path, None), "go on")


def test_gemini_resumes_by_session_id(tmp_path: Path) -> None:
    agent = GeminiAgent("gemini", GeminiOptions())
    argv = agent.argv(run_of(tmp_path, "972ee05f-8990"), "go on")
    assert argv[argv.index("--resume") + 1] == "972ee05f-8990"
    assert "--resume" not in agent.argv(run_of(tmp_path, None), "go on")


@pytest.mark.parametrize(
    ("agent", "transcript"),
    [
        (ClaudeAgent("claude", ClaudeOptions()), f"claude/projects/-srv-ws/{SESSION}.jsonl"),
        (CodexAgent("codex", CodexOptions()), f"codex/sessions/2026/11/30/rollout-2026-11-30T10-00-00-{SESSION}.jsonl"),
        (
            GeminiAgent("gemini", GeminiOptions()),
            "gemini/.gemini/tmp/ab12/chats/session-2026-11-30T10-00-5b0c1f9e.json",
        ),
    ],
)
def test_a_session_is_resumable_only_where_its_cli_keeps_its_transcript(
    agent: ClaudeAgent | CodexAgent | GeminiAgent, transcript: str, tmp_path: Path
) -> None:
    assert not agent.has_session(tmp_path, SESSION)
    (tmp_path / transcript).parent.mkdir(parents=True)
    (tmp_path / transcript).write_text("{}\n")
    assert agent.has_session(tmp_path, SESSION)
    assert not agent.has_session(tmp_path, "0000aaaa-6a53-4d0e-9a57-1f6e7f3c2d10")
