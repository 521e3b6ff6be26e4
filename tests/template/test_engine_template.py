"""The engine repository template: it builds offline, its oracle really compares with sqlite3, its fast tier is
seeded by AGENT_ID, and its backlog is one the swarm's dispatcher reads without an invalid task."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from swarm.backlog import load_dir

TEMPLATE = Path(__file__).resolve().parents[2] / "engine_repo_template"
CASES = TEMPLATE / "tests" / "sql"
RUNNER = TEMPLATE / "oracle" / "run.py"

# The session's cargo build and a test's own cargo run may each take 300 s: more than pytest's 300 s default.
pytestmark = pytest.mark.timeout(660)


def _needs_cargo() -> None:
    if shutil.which("cargo") is None:
        if os.environ.get("CI"):
            pytest.fail("cargo is required in CI to build the engine template")
        pytest.skip("cargo is not installed")


class Built:
    """A copy of the template built once, with its own CARGO_TARGET_DIR."""

    def __init__(self, repo: Path, target: Path) -> None:
        self.repo = repo
        self.target = target
        self.engine = target / "debug" / "engine"

    def env(self, **extra: str) -> dict[str, str]:
        env = {**os.environ, "CARGO_TARGET_DIR": str(self.target), "PYTHON": sys.executable}
        env.pop("AGENT_ID", None)
        env.pop("ENGINE_BIN", None)
        return {**env, **extra}


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    _needs_cargo()
    root = tmp_path_factory.mktemp("engine-template")
    repo = root / "repo"
    shutil.copytree(TEMPLATE, repo, ignore=shutil.ignore_patterns("target", "__pycache__", "*.db"))
    result = Built(repo, root / "cargo-target")
    proc = subprocess.run(
        ["cargo", "build", "--offline", "--workspace"],
        cwd=repo,
        env=result.env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return result


def run_oracle(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RUNNER), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or {**os.environ},
    )


def last_json(stdout: str) -> dict[str, object]:
    lines = stdout.strip().splitlines()
    assert lines, "no output"
    summary = json.loads(lines[-1])
    assert isinstance(summary, dict)
    return summary


# ---------------------------------------------------------------- build and the skeleton's real count


def test_template_builds_offline_and_engine_prints_list_mode(built: Built) -> None:
    proc = subprocess.run(
        [str(built.engine)],
        input="SELECT 1 + 2, 'a', NULL, 1e20, 7 / 2.0;\nSELECT nosuch;\nSELECT 5;\n",
        capture_output=True,
        text=True,
        timeout=10,
    )
    lines = proc.stdout.splitlines()
    assert lines[0] == "3|a||1.0e+20|3.5"
    assert lines[1].startswith("Error: ")
    assert lines[2] == "5"
    assert proc.returncode == 1, "a failed statement makes the exit status 1, like sqlite3"


def test_full_oracle_reports_real_passing_and_failing_counts(built: Built) -> None:
    proc = subprocess.run(
        ["./test.sh", "--json"],
        cwd=built.repo,
        env=built.env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    summary = last_json(proc.stdout)
    areas = summary["areas"]
    assert isinstance(areas, dict)
    passed, failed, skipped, total = (summary[k] for k in ("passed", "failed", "skipped", "total"))
    assert isinstance(passed, int) and isinstance(failed, int) and isinstance(total, int)
    assert summary["cargo_test"] == "ok" and summary["tier"] == "full"
    assert total >= 250 and len(areas) >= 12
    assert passed + failed + skipped == total and skipped == 0
    assert 0 < passed < total and failed > 0, "the skeleton passes a few cases honestly, not none and not all"
    assert sum(a["passed"] for a in areas.values()) == passed
    assert areas["select_literals"]["passed"] > 0
    assert areas["joins"]["passed"] == 0, "joins are not in the skeleton; a pass there would be an oracle bug"
    assert total == len(list(CASES.glob("*/*.sql")))


def test_fast_tier_runs_a_sample_and_counts_the_rest_as_skipped(built: Built) -> None:
    proc = subprocess.run(
        ["./test.sh", "--fast", "--json"],
        cwd=built.repo,
        env=built.env(AGENT_ID="agent-7"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = last_json(proc.stdout)
    assert summary["tier"] == "fast" and summary["seed"] == "agent-7"
    listed = run_oracle("--fast", "--list", env={**os.environ, "AGENT_ID": "agent-7"}).stdout.split()
    assert summary["passed"] + summary["failed"] == len(listed)
    assert summary["skipped"] == summary["total"] - len(listed)


def test_build_failure_makes_test_sh_fail_with_a_json_line(built: Built, tmp_path: Path) -> None:
    repo = tmp_path / "broken"
    shutil.copytree(built.repo, repo, ignore=shutil.ignore_patterns("target"))
    main_rs = repo / "crates" / "engine" / "src" / "main.rs"
    main_rs.write_text(main_rs.read_text() + "\nfn broken( {\n")
    proc = subprocess.run(
        ["./test.sh", "--json"],
        cwd=repo,
        env=built.env(CARGO_TARGET_DIR=str(tmp_path / "t")),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    assert last_json(proc.stdout)["error"] == "build failed"


# ---------------------------------------------------------------- fast-tier sampling


def fast_list(agent_id: str) -> list[str]:
    proc = run_oracle("--fast", "--list", env={**os.environ, "AGENT_ID": agent_id})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_same_agent_id_gives_the_same_fast_sample_and_others_differ() -> None:
    first, again, other = fast_list("claude-1"), fast_list("claude-1"), fast_list("codex-2")
    assert first == again
    assert first != other
    total = len(list(CASES.glob("*/*.sql")))
    assert 0.05 * total <= len(first) <= 0.25 * total
    smoke = {sorted(p.parent.name + "/" + p.stem for p in area.glob("*.sql"))[0] for area in CASES.iterdir()}
    assert smoke <= set(first) and smoke <= set(other), "the smoke set always runs"


# ---------------------------------------------------------------- the oracle really compares

FAKE_ENGINE = """\
#!{python}
# A stand-in engine that answers through Python's sqlite3, then breaks its answer as FAKE_MODE says.
import os, sys
sys.path.insert(0, {oracle!r})
import reference
from pathlib import Path
db = Path(sys.argv[1]) if len(sys.argv) > 1 else None
sql = sys.stdin.read()
lines = reference.expected_output(sql, db).splitlines()
mode = os.environ.get("FAKE_MODE", "correct")
seen = {{part for case in Path({cases!r}).glob("*/*.sql") for part in reference.sessions(case.read_text())}}
if mode == "replay" and sql not in seen:  # answers only the text of a visible case, as a recording would
    lines = []
elif mode == "hide_errors":
    lines = [line for line in lines if not line.startswith("Error:")]
elif mode == "reword_errors":
    lines = ["Error: something else entirely" if line.startswith("Error:") else line for line in lines]
elif mode == "wrong_last_row" and lines:
    lines[-1] = lines[-1] + "0"
elif mode == "reverse_rows":
    lines.reverse()
sys.stdout.write("".join(line + "\\n" for line in lines))
if mode == "panic":
    sys.exit(101)
if mode == "hang":
    import time; time.sleep(30)
"""


@pytest.fixture(scope="module")
def fake_engine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fake") / "engine"
    path.write_text(FAKE_ENGINE.format(python=sys.executable, oracle=str(TEMPLATE / "oracle"), cases=str(CASES)))
    path.chmod(0o755)
    return path


def oracle_with(engine: Path, mode: str, *selection: str, timeout: str = "10", seed: str = "") -> dict[str, object]:
    proc = run_oracle(
        "--engine",
        str(engine),
        "--json",
        "--timeout",
        timeout,
        *selection,
        env={**os.environ, "FAKE_MODE": mode, "SWARM_JUDGE_SEED": seed},
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return last_json(proc.stdout)


def failures(summary: dict[str, object]) -> int:
    value = summary["failed"]
    assert isinstance(value, int)
    return value


SAMPLE = (
    "select_literals/08_division",
    "select_literals/18_syntax_errors_continue",
    "create_insert/10_wrong_value_count",
    "order_limit/18_order_limit_many_rows",
    "persistence/10_three_sessions",
)


def test_a_correct_engine_passes_every_case_of_whole_areas(fake_engine: Path) -> None:
    summary = oracle_with(fake_engine, "correct", "select_literals", "aggregates", "persistence")
    ran = summary["passed"]
    assert failures(summary) == 0 and isinstance(ran, int) and ran >= 50


def test_an_engine_replaying_the_visible_answers_fails_every_variant_even_without_a_table(fake_engine: Path) -> None:
    # select_literals creates no table and inserts nothing: its variants differ by the numbered SELECT alone.
    assert failures(oracle_with(fake_engine, "replay", "select_literals")) == 0
    summary = oracle_with(fake_engine, "replay", "select_literals", "create_insert", seed="judge-secret")
    assert summary["passed"] == 0, summary
    assert failures(oracle_with(fake_engine, "correct", "select_literals", "create_insert", seed="judge-secret")) == 0


def test_a_wrong_row_fails_the_case(fake_engine: Path) -> None:
    assert failures(oracle_with(fake_engine, "wrong_last_row", *SAMPLE)) == len(SAMPLE)


def test_a_missing_error_fails_the_case_but_error_wording_is_free(fake_engine: Path) -> None:
    with_errors = ("select_literals/18_syntax_errors_continue", "create_insert/10_wrong_value_count")
    assert failures(oracle_with(fake_engine, "hide_errors", *with_errors)) == 2
    assert failures(oracle_with(fake_engine, "hide_errors", "select_literals/08_division")) == 0
    assert failures(oracle_with(fake_engine, "reword_errors", *with_errors)) == 0


def test_row_order_counts(fake_engine: Path) -> None:
    assert failures(oracle_with(fake_engine, "reverse_rows", "order_limit/18_order_limit_many_rows")) == 1


def test_a_panic_or_a_hang_fails_even_with_the_right_rows(fake_engine: Path) -> None:
    assert failures(oracle_with(fake_engine, "panic", "select_literals/08_division")) == 1
    summary = oracle_with(fake_engine, "hang", "select_literals/08_division", timeout="1")
    assert failures(summary) == 1


def test_strict_exits_non_zero_on_a_failing_case_and_plain_mode_does_not(fake_engine: Path) -> None:
    env = {**os.environ, "FAKE_MODE": "wrong_last_row"}
    case = "select_literals/08_division"
    assert run_oracle("--engine", str(fake_engine), case, env=env).returncode == 0
    assert run_oracle("--engine", str(fake_engine), "--strict", case, env=env).returncode == 1


def test_canned_output_is_compared_line_by_line(tmp_path: Path) -> None:
    """A shell-script engine with fixed output, on a case written here: exact expectations, no sqlite3 CLI."""
    cases = tmp_path / "cases" / "demo"
    cases.mkdir(parents=True)
    (cases / "one.sql").write_text("SELECT 1, 'a', NULL, 2.5 * 2;\nSELECT nosuch;\nSELECT 1e20;\n")
    engine = tmp_path / "engine.sh"

    def verdict(output: str) -> int:
        engine.write_text("#!/bin/sh\ncat >/dev/null\nprintf '%s' " + _sh_quote(output) + "\n")
        engine.chmod(0o755)
        proc = run_oracle("--engine", str(engine), "--cases-dir", str(tmp_path / "cases"), "--json")
        assert proc.returncode == 0, proc.stderr
        return failures(last_json(proc.stdout))

    assert verdict("1|a||5.0\nError: no such column: nosuch\n1.0e+20\n") == 0
    assert verdict("1|a||5.0   \nError: anything\n1.0e+20") == 0, "trailing spaces and error text are free"
    assert verdict("1|a||5\nError: x\n1.0e+20\n") == 1, "REAL 5.0 printed as 5"
    assert verdict("1|a|NULL|5.0\nError: x\n1.0e+20\n") == 1, "NULL printed as text"
    assert verdict("1|a||5.0\n1.0e+20\n") == 1, "missing error"
    assert verdict("1|a||5.0\nError: x\n1e+20\n") == 1, "sqlite3 prints 1.0e+20"
    assert verdict("1|a||5.0\nError: x\n1.0e+20\n1.0e+20\n") == 1, "extra row"


def _sh_quote(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


# ---------------------------------------------------------------- the cases themselves


def test_every_case_has_a_determined_row_order_and_runs_in_sqlite(tmp_path: Path) -> None:
    sys.path.insert(0, str(TEMPLATE / "oracle"))
    try:
        import reference
    finally:
        sys.path.pop(0)
    problems = []
    for path in sorted(CASES.glob("*/*.sql")):
        sql = path.read_text(encoding="utf-8")
        multi = len(reference.sessions(sql)) > 1
        try:
            plain = reference.expected_output(sql, tmp_path / f"{path.stem}-a.db" if multi else None)
            reverse = reference.expected_output(
                sql, tmp_path / f"{path.stem}-b.db" if multi else None, reverse_unordered=True
            )
        except reference.BrokenCase as exc:
            problems.append(f"{path}: {exc}")
            continue
        if plain != reverse:
            problems.append(f"{path}: output depends on an unspecified row order")
        if plain == "":
            problems.append(f"{path}: prints nothing, so it cannot tell a working engine from a silent one")
    assert problems == []


# ---------------------------------------------------------------- backlog, prompts, settings


def test_every_task_file_parses_and_the_dependency_graph_is_a_dag() -> None:
    backlog = load_dir(TEMPLATE / "tasks")
    assert backlog.invalid == []
    assert len(backlog.tasks) >= 30
    landed: list[str] = []
    while ready := backlog.ready(landed):
        landed.append(ready[0].id)
    assert sorted(landed) == sorted(backlog.tasks), "some tasks can never become ready"


def test_tasks_name_oracle_areas_that_exist() -> None:
    areas = {p.name for p in CASES.iterdir() if p.is_dir()}
    named = set()
    for task in load_dir(TEMPLATE / "tasks").tasks.values():
        named |= {a for a in areas if f"tests/sql/{a}" in task.body}
    assert named == areas, f"areas no task aims at: {sorted(areas - named)}"


def test_swarm_toml_and_prompts_agree() -> None:
    config = tomllib.loads((TEMPLATE / ".swarm.toml").read_text())
    assert config["backlog"] == "tasks" and (TEMPLATE / config["backlog"]).is_dir()
    assert (TEMPLATE / config["prompt"]).is_file() and (TEMPLATE / config["coalesce_prompt"]).is_file()
    assert config["protected"] == ["test.sh", "oracle/**", "tests/sql/**", ".swarm.toml"]
    oracle = config["oracle"]
    # The judge's contract: the candidate's build and unit tests sandboxed, main's harness against its engine.
    assert "cargo build" in oracle["build"] and "cargo test" in oracle["build"] and oracle["unit_runner"] == "cargo"
    assert oracle["artifacts"] == {"engine": "{cache}/cargo-target/debug/engine"}
    assert oracle["env"] == {"CARGO_TARGET_DIR": "{cache}/cargo-target"}
    assert oracle["fast"] == "python3 oracle/run.py --fast --json" and oracle["full"] == "python3 oracle/run.py --json"
    assert all(glob in config["protected"] for glob in oracle["harness"]), "every file of the judge is protected"
    prompt = (TEMPLATE / config["prompt"]).read_text()
    for pattern in config["protected"]:
        assert pattern.removesuffix("**") in prompt, f"AGENT_PROMPT.md does not warn about {pattern}"
    for needed in ("./test.sh --fast", "notes/", "tasks/<", "depends_on"):
        assert needed in prompt
    assert os.access(TEMPLATE / "test.sh", os.X_OK)


@pytest.fixture(autouse=True)
def _no_stray_build_output() -> Iterator[None]:
    """Tests build in tmp; a target/ in the template would be copied into every new project."""
    yield
    assert not (TEMPLATE / "target").exists()
