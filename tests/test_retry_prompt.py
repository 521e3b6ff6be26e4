"""A retry learns from the last attempt: its prompt says why that attempt was rejected, with the failing output."""

from __future__ import annotations

from pathlib import Path

from swarm.runtime import Runtime
from tests.conftest import Project, task_file
from tests.test_exporter import run


def noisy_oracle(project: Project) -> None:
    """The toy oracle also prints 500 lines before its summary, as a real test suite does."""
    oracle = project.clone / "oracle.py"
    oracle.write_text(oracle.read_text().replace(
        'print(f"checked {passed + failed} cases")',
        'print("\\n".join(f"noise line {i}" for i in range(500)))\nprint(f"checked {passed + failed} cases")',
    ))  # fmt: skip
    project.commit_all("A noisy oracle")


def test_the_second_attempt_is_told_why_the_first_was_rejected_with_a_bounded_tail(
    project: Project, rt: Runtime, tmp_path: Path
) -> None:
    noisy_oracle(project)
    first, second = project.signals / "prompt1.md", project.signals / "prompt2.md"
    project.add_tasks({"alpha": task_file("Alpha", f"@1 sh cp \"$SWARM_PROMPT_FILE\" {first}\n"
                                          "@1 write src/alpha.txt BREAK\n"
                                          f"@2 sh cp \"$SWARM_PROMPT_FILE\" {second}\n"
                                          "@2 write src/alpha.txt alpha")})  # fmt: skip
    assert run(rt, "alpha", "claude") == "rejected"
    assert run(rt, "alpha", "codex") == "landed"

    assert "previous attempt" not in first.read_text(), "a first attempt has nothing to learn from"
    prompt = second.read_text()
    assert "# The previous attempt did not land" in prompt
    assert "Attempt by `claude`: rejected, reason `oracle_red`." in prompt
    assert "Its full oracle: passed" in prompt, "the tier that judged it (the fast one is skipped: the train has room)"
    quoted = prompt.split("The end of its failing oracle output:", 1)[1].split("```")[1]
    assert "noise line 499" in quoted and '"passed":' in quoted, "the end of the failing output"
    assert "noise line 400" not in quoted and len(quoted) <= 4100, "bounded: the last lines only"
    assert prompt.index("# The previous attempt") < prompt.index("# Context"), "before the live context"
