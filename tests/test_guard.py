"""Changes no restore can make safe are refused with a clear reason, never a crash (real pipeline, real git)."""

from __future__ import annotations

import pytest

from swarm.runtime import Runtime
from tests.conftest import Project, task_file
from tests.test_pipeline import history, pipeline


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        ("sh ln -s /etc/passwd src/stolen.txt\nwrite src/alpha.txt alpha", "outside the repository"),
        ("sh ln -s ../../../outside src/up.txt\nwrite src/alpha.txt alpha", "outside the repository"),
        ("sh rm oracle.py && ln -s src/base.txt oracle.py\nwrite src/alpha.txt alpha", "replaced by a symlink"),
        ("sh rm -rf checks && echo x > checks\nwrite src/alpha.txt alpha", "replaces a protected folder"),
        ("sh rm -rf checks && ln -s src checks\nwrite src/alpha.txt alpha", "replaces a protected folder"),
        ("sh rm oracle.py && mkdir oracle.py && echo x > oracle.py/x\nwrite src/alpha.txt alpha", "into a folder"),
    ],
    ids=["link-to-etc", "link-upwards", "protected-file-to-link", "protected-folder-to-file",
         "protected-folder-to-link", "protected-file-to-folder"],
)  # fmt: skip
def test_structural_tampering_is_refused_with_its_reason(
    project: Project, rt: Runtime, script: str, reason: str
) -> None:
    project.add_tasks({"swap": task_file("Swap", script)})
    before = project.main_log()
    outcome = pipeline(rt).run("swap", "claude")
    record = history(rt, "swap")[-1]
    assert outcome == "rejected", record
    assert record.reason == "refused_structure" and reason in record.detail, record
    assert project.main_log() == before


def test_a_symlink_inside_the_repository_lands(project: Project, rt: Runtime) -> None:
    project.add_tasks({"link": task_file("Link", "sh ln -s base.txt src/alias.txt\nwrite src/alpha.txt alpha")})
    assert pipeline(rt).run("link", "claude") == "landed"


def test_a_nested_repository_is_not_taken_as_a_submodule(project: Project, rt: Runtime) -> None:
    script = (
        "sh mkdir -p sub && cd sub && git init -q && echo x > f && git add f && git commit -qm x\nwrite src/alpha.txt a"
    )
    project.add_tasks({"nested": task_file("Nested", script)})
    assert pipeline(rt).run("nested", "claude") == "landed"
    assert "sub" not in project.git("ls-tree", "--name-only", "main").split()
