"""Reading what a CLI printed, leniently: JSON lines, JSON objects amid text, the prompt argument."""

from __future__ import annotations

from pathlib import Path

from swarm.agents import cli_adapter, output


def test_events_skip_garbage_truncated_and_non_object_lines(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    log.write_bytes(b'banner text\n{"type":"a"}\n[1,2]\n\xff\xfe binary\n{"type":"b"}\n{"type":"c","trunc')
    assert [e["type"] for e in output.events(log)] == ["a", "b"]
    assert list(output.events(tmp_path / "missing.log")) == []


def test_json_objects_finds_a_pretty_printed_error_amid_text() -> None:
    text = 'Warning: x\n{\n  "error": {"message": "boom", "code": 41}\n}\nmore {not json\n'
    assert output.json_objects(text) == [{"error": {"message": "boom", "code": 41}}]


def test_a_long_or_dash_prompt_is_still_one_safe_argument(tmp_path: Path) -> None:
    prompt = tmp_path / "prompt.md"
    prompt.write_text("--help me")
    assert cli_adapter.prompt_text(prompt) == "\n--help me"
    prompt.write_text("x" * (cli_adapter.PROMPT_ARG_LIMIT + 1))
    assert str(prompt) in cli_adapter.prompt_text(prompt) and len(cli_adapter.prompt_text(prompt)) < 1000
