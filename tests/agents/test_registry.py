"""The registry: adapters by name or by a dotted path of the user's own; every adapter starts its process
through the one `launch` (so a sandbox wraps every agent by changing one place)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from swarm.agents import registry
from swarm.agents.command import CommandAgent

AGENTS = Path(registry.__file__).resolve().parent


def test_a_dotted_path_names_an_adapter_class_of_ones_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "myagents.py").write_text(
        "from swarm.agents.command import CommandAgent\n\nclass MyAgent(CommandAgent):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    agent = registry.make("mine", "myagents:MyAgent", {"command": ["true"]})
    assert type(agent).__name__ == "MyAgent" and isinstance(agent, CommandAgent)
    sys.modules.pop("myagents", None)


@pytest.mark.parametrize(
    ("adapter", "error"),
    [
        ("nosuch", r"vendors\.v\.adapter: unknown adapter 'nosuch' \(known: claude, codex, command, gemini, replay"),
        ("no_such_module_x:A", r"vendors\.v\.adapter: adapter 'no_such_module_x:A': cannot import 'no_such_module_x'"),
        ("swarm.agents.base:Nope", r"module 'swarm.agents.base' has no class 'Nope'"),
        ("swarm.agents.base:AgentRun", r"adapter 'swarm.agents.base:AgentRun' is not an Agent: it has no Options"),
    ],
)
def test_a_bad_adapter_name_is_a_clear_settings_error(adapter: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        registry.validate_options("v", adapter, {})


def test_every_adapter_starts_its_process_through_the_one_launch() -> None:
    calls = {p.name: len(re.findall(r"\bproc\.run\(", p.read_text())) for p in AGENTS.glob("*.py")}
    assert {name: n for name, n in calls.items() if n} == {"process.py": 1}
    launches = {p.name for p in AGENTS.glob("*.py") if re.search(r"\blaunch\(", p.read_text())}
    assert {"cli_adapter.py", "command.py", "replay.py"} <= launches
