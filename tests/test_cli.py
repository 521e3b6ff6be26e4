"""The `swarm` command, run as a real subprocess with its settings in a swarm.toml named by SWARM_CONFIG."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from swarm import keys, slots
from tests.conftest import SCRIPTED_AGENT, TOY_REPO, Project, task_file

REPO_ROOT = Path(__file__).resolve().parent.parent


def write_config(
    path: Path, project: Project | None, redis_url: str | None, extra: str = "", **vendors: list[str]
) -> Path:
    lines = []
    if redis_url:
        lines.append(f'redis_url = "{redis_url}"')
    if project is not None:
        lines += [f'origin = "{project.origin}"', f'workdir = "{project.workdir}"']
    lines.append(extra)
    for name, command in vendors.items():
        lines += [f"[vendors.{name}]", 'adapter = "command"', f"command = {json.dumps(command)}", ""]
    path.write_text("\n".join(lines) + "\n")
    return path


AGENT = [sys.executable, str(SCRIPTED_AGENT), "{prompt_file}"]


def swarm(
    *args: str, config: Path | None, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.upper().startswith("SWARM_")}
    base.update(PYTHONPATH=str(REPO_ROOT), COLUMNS="200")
    if config is not None:
        base["SWARM_CONFIG"] = str(config)
    base.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "swarm", *args], cwd=cwd, env=base, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def config(project: Project, redis_url: str, tmp_path: Path, r: redis.Redis) -> Path:
    for vendor in ("claude", "codex"):  # a live worker slot each, as running workers announce them
        slots.announce(r, vendor, "test-0", 600)
    return write_config(tmp_path / "swarm.toml", project, redis_url, claude=AGENT, codex=AGENT)


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A cwd without a swarm.toml or .env, so only SWARM_CONFIG counts."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    return cwd


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr + result.stdout


def test_init_makes_an_origin_a_clone_and_a_config(tmp_path: Path, redis_url: str, elsewhere: Path) -> None:
    target = tmp_path / "proj"
    result = swarm("init", str(target), "--template", str(TOY_REPO), config=None, cwd=elsewhere)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (target / "origin.git" / "HEAD").is_file()
    assert (target / "work" / ".swarm.toml").is_file() and (target / "work" / ".git").is_dir()
    head = subprocess.run(["git", "rev-parse", "main"], cwd=target / "origin.git", capture_output=True, text=True)
    assert (
        head.stdout.strip()
        == subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=target / "work", capture_output=True, text=True
        ).stdout.strip()
    )
    config = target / "swarm.toml"
    assert config.is_file()
    # The starter config is usable as it is, once Redis is named.
    with config.open("a") as f:
        f.write(f'redis_url = "{redis_url}"\n')
    status = swarm("status", "--json", config=config, cwd=elsewhere)
    assert status.returncode == 0, status.stdout + status.stderr
    assert json.loads(status.stdout)["main"] == head.stdout.strip()
    assert (target / ".swarm" / "mirror.git").is_dir(), "the workdir of the starter config is used"


def test_init_refuses_a_non_empty_folder_with_a_clear_error(tmp_path: Path, elsewhere: Path) -> None:
    target = tmp_path / "proj"
    (target / "work").mkdir(parents=True)
    (target / "work" / "precious.txt").write_text("keep")
    result = swarm("init", str(target), "--template", str(TOY_REPO), config=None, cwd=elsewhere)
    assert result.returncode == 2
    no_traceback(result)
    assert "not empty" in result.stdout + result.stderr
    assert (target / "work" / "precious.txt").read_text() == "keep"
    assert not (target / "swarm.toml").exists()


def test_status_json_lists_each_task_with_its_state(project: Project, config: Path, elsewhere: Path) -> None:
    project.add_tasks(
        {
            "base": task_file("Base", priority=5),
            "top": task_file("Top", depends_on=["base"]),
            "done": task_file("Done"),
            "no-title": "---\npriority: 1\n---\n",
        }
    )
    project.git("update-ref", "refs/swarm/landed/done", project.git("rev-parse", "main"))
    result = swarm("status", "--json", config=config, cwd=elsewhere)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["main"] == project.git("rev-parse", "main")
    states = {row["id"]: row["state"] for row in report["tasks"]}
    assert states == {"base": "ready", "top": "blocked", "done": "landed", "tasks/no-title.md": "invalid"}
    invalid = next(row for row in report["tasks"] if row["state"] == "invalid")
    assert "title" in invalid["reason"] and invalid["path"] == "tasks/no-title.md"
    assert report["counts"] == {"ready": 1, "blocked": 1, "landed": 1, "invalid": 1}
    assert report["repo_error"] is None


def test_status_shows_leases_queued_and_failed(project: Project, config: Path, elsewhere: Path, r: redis.Redis) -> None:
    project.add_tasks({"a": task_file("A"), "b": task_file("B"), "c": task_file("C")})
    r.set(keys.queued("a"), "codex")
    r.set(keys.lease("b"), json.dumps({"token": "t", "worker": "w7", "vendor": "claude", "task": "b"}), px=30_000)
    r.set(keys.failed("c"), json.dumps({"reason": "oracle_red", "detail": "red", "attempts": 2}))
    report = json.loads(swarm("status", "--json", config=config, cwd=elsewhere).stdout)
    rows = {row["id"]: row for row in report["tasks"]}
    assert rows["a"]["state"] == "queued" and rows["a"]["queued_on"] == "codex"
    assert rows["b"]["state"] == "leased" and rows["b"]["lease"]["worker"] == "w7"
    assert 0 < rows["b"]["lease"]["ms_left"] <= 30_000
    assert rows["c"]["state"] == "failed" and rows["c"]["failure"]["reason"] == "oracle_red"
    human = swarm("status", config=config, cwd=elsewhere)
    assert human.returncode == 0 and "w7" in human.stdout and "oracle_red" in human.stdout


def test_doctor_passes_when_everything_is_fine(config: Path, elsewhere: Path) -> None:
    result = swarm("doctor", config=config, cwd=elsewhere)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAIL" not in result.stdout
    for name in ("redis", "origin", "origin push", "oracle fast", "vendor claude", "vendor codex"):
        assert f"{name}:" in result.stdout


def test_doctor_fails_naming_a_vendor_whose_command_is_missing(
    project: Project, redis_url: str, tmp_path: Path, elsewhere: Path
) -> None:
    config = write_config(tmp_path / "s.toml", project, redis_url, claude=AGENT, ghost=["no-such-ghost-cli", "-p"])
    result = swarm("doctor", config=config, cwd=elsewhere)
    assert result.returncode != 0
    no_traceback(result)
    fail_lines = [ln for ln in result.stdout.splitlines() if "FAIL" in ln]
    assert len(fail_lines) == 1 and "vendor ghost" in fail_lines[0] and "no-such-ghost-cli" in fail_lines[0]


def test_doctor_fails_without_vendors_or_redis(project: Project, tmp_path: Path, elsewhere: Path) -> None:
    config = write_config(tmp_path / "s.toml", project, "redis://127.0.0.1:1/0")
    result = swarm("doctor", config=config, cwd=elsewhere)
    assert result.returncode == 1
    no_traceback(result)
    fails = "\n".join(ln for ln in result.stdout.splitlines() if "FAIL" in ln)
    assert "vendors" in fails and "redis" in fails


def test_doctor_never_shows_the_redis_password(
    project: Project, redis_url: str, tmp_path: Path, elsewhere: Path
) -> None:
    secret = "hunter2-s3cret"
    with_password = redis_url.replace("redis://", f"redis://:{secret}@")
    config = write_config(tmp_path / "s.toml", project, with_password, claude=AGENT)
    result = swarm("doctor", config=config, cwd=elsewhere)
    no_traceback(result)
    assert "redis:" in result.stdout and ":***@127.0.0.1" in result.stdout
    assert secret not in result.stdout + result.stderr


def test_a_bad_redis_url_is_named_without_its_password(tmp_path: Path, elsewhere: Path) -> None:
    config = write_config(tmp_path / "s.toml", None, "http://admin:hunter2-s3cret@redis.example:6379/0")
    result = swarm("status", config=config, cwd=elsewhere)
    assert result.returncode == 2 and "redis_url" in result.stderr and "not a Redis URL" in result.stderr
    assert "hunter2-s3cret" not in result.stdout + result.stderr and "admin:***@" in result.stderr


BAD_SETTINGS = [
    ("lease_ttl = -1", "lease_ttl"),
    ('redis_url_typo = "x"', "redis_url_typo"),
    ("max_attempts = 0", "max_attempts"),
    ("lease_ttl = [", "TOML"),
]


COMMANDS = [["status"], ["status", "--json"], ["doctor"], ["dispatch"], ["retry", "x"], ["reap"]]
# Every command meets a bad setting and every bad setting some command, without running all 24 pairs.
CASES = [(cmd, *BAD_SETTINGS[i % len(BAD_SETTINGS)]) for i, cmd in enumerate(COMMANDS)]


@pytest.mark.parametrize(("command", "line", "name"), CASES, ids=[f"{' '.join(c)}:{n}" for c, _, n in CASES])
def test_a_bad_setting_makes_any_command_exit_2_naming_it(
    command: list[str], line: str, name: str, project: Project, redis_url: str, tmp_path: Path, elsewhere: Path
) -> None:
    config = write_config(tmp_path / "bad.toml", project, redis_url, extra=line, claude=AGENT)
    result = swarm(*command, config=config, cwd=elsewhere)
    assert result.returncode == 2, result.stdout + result.stderr
    no_traceback(result)
    output = (result.stdout + result.stderr).strip()
    naming = [ln for ln in output.splitlines() if name in ln]
    assert naming, output
    assert str(config) in naming[0], f"the line naming {name} also names the file: {naming[0]}"
    assert len(output.splitlines()) <= 3, f"a short error, not a report: {output}"


def test_the_error_line_is_not_wrapped_without_a_terminal(
    project: Project, redis_url: str, tmp_path: Path, elsewhere: Path
) -> None:
    config = write_config(tmp_path / "bad.toml", project, redis_url, extra="lease_ttl = -1", claude=AGENT)
    result = swarm("status", config=config, cwd=elsewhere, env={"COLUMNS": ""})
    assert result.returncode == 2
    lines = (result.stdout + result.stderr).splitlines()
    assert any("lease_ttl" in ln and str(config) in ln and "greater than 0" in ln for ln in lines), lines


def test_an_unset_required_setting_is_named_with_its_env_var(project: Project, tmp_path: Path, elsewhere: Path) -> None:
    config = write_config(tmp_path / "s.toml", project, None, claude=AGENT)
    result = swarm("status", config=config, cwd=elsewhere)
    assert result.returncode == 2
    no_traceback(result)
    assert "redis_url" in result.stdout + result.stderr and "SWARM_REDIS_URL" in result.stdout + result.stderr


def test_a_missing_swarm_config_file_is_named(tmp_path: Path, elsewhere: Path) -> None:
    result = swarm("status", config=tmp_path / "nope.toml", cwd=elsewhere)
    assert result.returncode == 2
    no_traceback(result)
    assert "SWARM_CONFIG" in result.stdout + result.stderr and "nope.toml" in result.stdout + result.stderr


def test_a_bad_setting_in_the_environment_is_named(config: Path, elsewhere: Path) -> None:
    result = swarm("status", config=config, cwd=elsewhere, env={"SWARM_LEASE_TTL": "soon"})
    assert result.returncode == 2
    no_traceback(result)
    assert "lease_ttl" in result.stdout + result.stderr and "SWARM_LEASE_TTL" in result.stdout + result.stderr


def test_an_unreachable_redis_is_a_clear_error_not_a_traceback(
    project: Project, tmp_path: Path, elsewhere: Path
) -> None:
    config = write_config(tmp_path / "s.toml", project, "redis://127.0.0.1:1/0", claude=AGENT)
    result = swarm("status", config=config, cwd=elsewhere)
    assert result.returncode != 0
    no_traceback(result)
    assert "redis" in (result.stdout + result.stderr).lower()


def test_retry_clears_a_failure_and_queues_the_task(
    project: Project, config: Path, elsewhere: Path, r: redis.Redis
) -> None:
    project.add_tasks({"flaky": task_file("Flaky")})
    r.set(keys.failed("flaky"), json.dumps({"reason": "oracle_red", "attempts": 2}))
    r.hset(keys.budget("flaky"), mapping={"used": 2, "runs": 2})
    result = swarm("retry", "flaky", config=config, cwd=elsewhere)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "failure cleared" in result.stdout
    assert not r.exists(keys.failed("flaky")) and r.hget(keys.budget("flaky"), "used") == b"0"
    vendor = r.get(keys.queued("flaky"))
    assert vendor in (b"claude", b"codex") and f"queued flaky -> {vendor.decode()}" in result.stdout
    assert r.llen(vendor) == 1, "a Celery message waits in the vendor's queue"
    again = swarm("retry", "flaky", config=config, cwd=elsewhere)
    assert again.returncode == 0 and "was not marked failed" in again.stdout


def test_retry_with_the_config_option_instead_of_swarm_config(
    project: Project, config: Path, elsewhere: Path, r: redis.Redis
) -> None:
    project.add_tasks({"flaky": task_file("Flaky")})
    r.set(keys.failed("flaky"), json.dumps({"reason": "oracle_red", "attempts": 2}))
    result = swarm("--config", str(config), "retry", "flaky", config=None, cwd=elsewhere)
    assert result.returncode == 0, result.stdout + result.stderr
    assert r.exists(keys.queued("flaky"))


def test_dispatch_queues_ready_tasks_once(project: Project, config: Path, elsewhere: Path, r: redis.Redis) -> None:
    project.add_tasks({"a": task_file("A"), "b": task_file("B", depends_on=["a"])})
    first = swarm("dispatch", config=config, cwd=elsewhere)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "queued a ->" in first.stdout and "queued b" not in first.stdout
    second = swarm("dispatch", config=config, cwd=elsewhere)
    assert second.returncode == 0 and "nothing ready to queue" in second.stdout
    assert sum(r.llen(q) for q in ("claude", "codex")) == 1


def test_status_with_the_config_option(project: Project, config: Path, elsewhere: Path) -> None:
    result = swarm("--config", str(config), "status", "--json", config=None, cwd=elsewhere)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["main"] == project.git("rev-parse", "main")


def test_unblock_clears_a_vendors_cooldown_and_auth_error(config: Path, elsewhere: Path, r: redis.Redis) -> None:
    from swarm.quota import VendorLedger

    VendorLedger(r).cool_down("claude", None, reason="429")
    VendorLedger(r).mark_auth_error("codex", "Not logged in")
    assert VendorLedger(r).blocked("claude") and VendorLedger(r).blocked("codex")
    for vendor in ("claude", "codex"):
        result = swarm("unblock", vendor, config=config, cwd=elsewhere)
        assert result.returncode == 0, result.stdout + result.stderr
    assert VendorLedger(r).blocked("claude") is None and VendorLedger(r).blocked("codex") is None
    bad = swarm("unblock", "nobody", config=config, cwd=elsewhere)
    assert bad.returncode == 2 and "no vendor 'nobody'" in bad.stderr


@pytest.mark.parametrize(
    ("setting", "words"),
    [
        ('workdir = "/etc/hostname/swarm"', ["'workdir'", "/etc/hostname/swarm", "cannot create or write"]),
        ('origin = "/nonexistent/origin.git"', ["'origin'", "/nonexistent/origin.git", "cannot fetch"]),
    ],
    ids=["workdir under a file", "origin that does not exist"],
)
def test_an_unusable_workdir_or_origin_is_named(
    project: Project, redis_url: str, tmp_path: Path, elsewhere: Path, setting: str, words: list[str]
) -> None:
    good = {"origin": f'origin = "{project.origin}"', "workdir": f'workdir = "{project.workdir}"'}
    good[setting.split(" = ")[0]] = setting
    config = write_config(tmp_path / "s.toml", None, redis_url, extra="\n".join(good.values()), claude=AGENT)
    result = swarm("status", config=config, cwd=elsewhere)
    assert result.returncode == 2
    no_traceback(result)
    for word in words:
        assert word in result.stderr, result.stderr


def test_history_lists_each_attempt_with_its_reason_and_logs(project: Project, config: Path, elsewhere: Path) -> None:
    from swarm.runtime import connect
    from swarm.settings import load_settings
    from tests.test_pipeline import pipeline

    project.add_tasks({"broken": task_file("Broken", "write src/alpha.txt BREAK")})
    rt = connect(load_settings(config))
    assert pipeline(rt).run("broken", "claude") == "rejected"
    result = swarm("history", "broken", "--json", config=config, cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    (record,) = json.loads(result.stdout)
    assert record["outcome"] == "rejected" and record["reason"] == "oracle_red"
    assert list(Path(record["log_dir"]).glob("*-oracle-full.log")) and Path(record["log_dir"], "prompt.md").is_file()
    table = swarm("history", "broken", config=config, cwd=elsewhere)
    assert "oracle_red" in table.stdout and record["log_dir"] in table.stdout


def test_brackets_in_reasons_are_printed_not_eaten_as_markup(project: Project, config: Path, elsewhere: Path) -> None:
    (project.clone / "tasks" / "Bad_Name.md").write_text("---\ntitle: x\n---\n")
    project.add_tasks({"ok": task_file("Fine")})
    result = swarm("status", config=config, cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    assert "[a-z0-9][a-z0-9-]*" in result.stdout.replace("\n", ""), result.stdout


def test_coalesce_queues_a_clean_up_pass_once(project: Project, config: Path, elsewhere: Path, r: redis.Redis) -> None:
    from tests.test_pipeline import with_coalesce_prompt

    none = swarm("coalesce", config=config, cwd=elsewhere)
    assert none.returncode == 2 and "coalesce_prompt" in none.stderr
    with_coalesce_prompt(project)
    first = swarm("coalesce", config=config, cwd=elsewhere)
    assert first.returncode == 0, first.stderr
    vendor = r.get(keys.queued("coalesce-1"))
    assert vendor and f"queued coalesce-1 -> {vendor.decode()}" in first.stdout and r.llen(vendor) == 1
    again = swarm("coalesce", config=config, cwd=elsewhere)
    assert "already queued" in again.stdout and r.llen(vendor) == 1


def test_status_shows_each_tasks_last_attempt_and_spend(project: Project, config: Path, elsewhere: Path) -> None:
    from swarm.agents.base import AgentResult
    from swarm.runtime import connect
    from swarm.settings import load_settings
    from tests.test_pipeline import pipeline

    project.add_tasks({"broken": task_file("Broken", "write src/alpha.txt BREAK"), "idle": task_file("Idle")})
    rt = connect(load_settings(config))
    assert pipeline(rt).run("broken", "claude") == "rejected"
    rt.ledger.record_spend("claude", "broken", AgentResult("ok", input_tokens=1000, output_tokens=10, cost_usd=0.25))
    result = swarm("status", "--json", config=config, cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    rows = {row["id"]: row for row in json.loads(result.stdout)["tasks"]}
    assert rows["broken"]["last_attempt"]["reason"] == "oracle_red"
    assert rows["broken"]["spend"]["cost_usd"] == 0.25 and rows["broken"]["spend"]["input_tokens"] == 1000
    assert "last_attempt" not in rows["idle"] and "spend" not in rows["idle"]
