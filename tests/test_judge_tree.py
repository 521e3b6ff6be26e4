"""The judge's tree folder is kept from run to run, so a verdict's cost follows the change and not the repository;
nothing a run changes there may reach the next run's verdict."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from swarm import repo, sandbox
from swarm.judge import Judge
from swarm.settings import parse_repo_settings
from tests.conftest import GIT_IDENTITY

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(bool(sandbox.check()) and os.environ.get("CI") != "true", reason=sandbox.check()),
]

# The harness (main's, put back over the candidate's) counts the lines of cases.txt, after running the candidate's
# own hook.sh if it has one: the candidate's code runs in the judge's tree, as a build does.
HARNESS = """import json, os, subprocess
if os.path.exists("hook.sh"):
    subprocess.run(["sh", "hook.sh"], check=False)
lines = open("cases.txt").read().split()
print(json.dumps({"passed": lines.count("pass"), "failed": lines.count("fail"), "skipped": 0}))
"""
SETTINGS = '[oracle]\nfast = "python3 check.py"\nfull = "python3 check.py"\nharness = ["check.py"]\n'
# Turns every "fail" into "pass" in place (the same size), then puts the file's times back, and leaves a new file.
TAMPER = """python3 - <<'EOF'
import os
st = os.stat("cases.txt")
with open("cases.txt", "r+") as fh:
    text = fh.read().replace("fail", "pass")
    fh.seek(0)
    fh.write(text)
os.utime("cases.txt", ns=(st.st_atime_ns, st.st_mtime_ns))
open("left-behind.txt", "w").write("x")
EOF
"""


def commit(clone: Path, files: dict[str, str], message: str) -> None:
    for path, text in files.items():
        (clone / path).write_text(text)
    env = {**os.environ, **GIT_IDENTITY}
    subprocess.run(["git", "-C", str(clone), "add", "-A"], check=True, env=env)
    subprocess.run(["git", "-C", str(clone), "commit", "-qm", message], check=True, env=env)
    subprocess.run(["git", "-C", str(clone), "push", "-q", "origin", "HEAD:main"], check=True, env=env)


def test_a_run_leaves_nothing_in_the_kept_tree_for_the_next_verdict(tmp_path: Path) -> None:
    template = tmp_path / "template"
    (template / "filler").mkdir(parents=True)
    for i in range(50):
        (template / "filler" / f"f{i}.txt").write_text(f"{i}\n")
    (template / "cases.txt").write_text("pass\nfail\nfail\n")
    (template / "check.py").write_text(HARNESS)
    (template / ".swarm.toml").write_text(SETTINGS)
    origin, clone = tmp_path / "origin.git", tmp_path / "clone"
    repo.init_project(template, origin, clone)
    commit(clone, {"hook.sh": TAMPER, "filler/f1.txt": "changed\n"}, "a candidate whose code tampers with the tree")
    mirror = repo.Mirror(str(origin), tmp_path / "mirror.git").ensure()
    cand = mirror.fetch()
    main = mirror.rev(f"{cand}~1")
    settings = parse_repo_settings(SETTINGS, "test")
    judge = Judge(mirror, tmp_path / "judge", seed="s")

    def verdict(commit: str) -> tuple[int, int]:
        result = judge.run(settings, "full", commit, main, tmp_path / f"{commit[:8]}.log", agent_id="t", timeout=60)
        return result.passed, result.failed

    tree = tmp_path / "judge" / "tree"
    assert verdict(main) == (1, 2)
    untouched = os.stat(tree / "filler" / "f2.txt")
    assert verdict(cand) == (3, 0), "the candidate's hook ran in the judge's tree"
    assert verdict(main) == (1, 2), "the candidate's in-place edit (size and times put back) reached the next run"
    assert not (tree / "left-behind.txt").exists() and not (tree / "hook.sh").exists()
    assert (tree / "filler" / "f1.txt").read_text() == "1\n"
    again = os.stat(tree / "filler" / "f2.txt")
    assert (again.st_ino, again.st_mtime_ns) == (untouched.st_ino, untouched.st_mtime_ns), (
        "a file no run changed was written again: the tree's cost would follow the repository, not the change"
    )
    lines = [json.loads(ln) for ln in (tmp_path / "judge" / "verdicts.jsonl").read_text().splitlines()]
    assert [v["passed"] for v in lines] == [1, 3, 1]


def test_a_tree_whose_index_is_damaged_is_written_anew_and_the_slot_goes_on(tmp_path: Path) -> None:
    template = tmp_path / "template"
    template.mkdir()
    (template / "cases.txt").write_text("pass\nfail\n")
    (template / "check.py").write_text(HARNESS)
    (template / ".swarm.toml").write_text(SETTINGS)
    repo.init_project(template, tmp_path / "origin.git", tmp_path / "clone")
    mirror = repo.Mirror(str(tmp_path / "origin.git"), tmp_path / "mirror.git").ensure()
    main = mirror.fetch()
    settings = parse_repo_settings(SETTINGS, "test")
    judge = Judge(mirror, tmp_path / "judge", seed="s")

    def verdict() -> tuple[int, int]:
        result = judge.run(settings, "full", main, main, tmp_path / "run.log", agent_id="t", timeout=60)
        return result.passed, result.failed

    assert verdict() == (1, 1)
    repo.index_of(tmp_path / "judge" / "tree").write_bytes(b"not an index")
    (tmp_path / "judge" / "tree" / "cases.txt").write_text("pass\npass\n")
    assert verdict() == (1, 1), "the damaged tree was used as it was"
    assert sorted(p.name for p in (tmp_path / "judge").iterdir() if p.name.startswith("tree")) == ["tree", "tree.lock"]
