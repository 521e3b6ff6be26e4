"""Each vendor adapter end to end through the pipeline (real Redis, real git, real processes), with the fake CLIs
in bin/ standing in for the vendors' intelligence; and the real CLIs, where installed, without credentials."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from swarm.agents import claude, registry
from swarm.agents.base import AgentResult
from swarm.agents.process import launch
from swarm.pipeline import Pipeline
from swarm.runtime import Runtime, connect
from tests.agents.helpers import (
    BIN,
    CLIS,
    DATA,
    KEY_VARS,
    OWN_KEY,
    agent_run,
    real_cli,
    real_clis_side_by_side,
    root_sandbox_env,
)
from tests.conftest import Project, make_settings, task_file


def vendors(record: Path | None = None, shared: Path | None = None, **timeouts: float) -> dict[str, dict[str, object]]:
    """One vendor per fake CLI, each with its own adapter. In its sandbox the fake CLI reads its recorded streams;
    it writes only to `shared` (or the record's folder), a folder the test gives it on purpose."""
    tables: dict[str, dict[str, object]] = {}
    rw = [str(p) for p in (shared, record.parent if record else None) if p is not None]
    for cli in CLIS:
        table: dict[str, object] = {"adapter": cli, "binary": str(BIN / cli), "sandbox_ro": [str(DATA)],
                                    "sandbox_rw": rw}  # fmt: skip
        env = root_sandbox_env(cli)
        if record is not None:
            env["FAKE_CLI_RECORD"] = str(record)
        if env:
            table["env"] = env
        if cli in timeouts:
            table["timeout"] = timeouts[cli]
        tables[cli] = table
    return tables


def pipeline(rt: Runtime, worker: str = "w1") -> Pipeline:
    def agent(vendor: str):  # type: ignore[no-untyped-def]
        table = rt.settings.vendors[vendor]
        return registry.make(vendor, table.adapter, table.options())

    return Pipeline.on(rt, agent, worker)


@pytest.fixture
def keys_set(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {name: f"sk-test-{name.lower().replace('_', '-')}-0123456789" for name in KEY_VARS}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@pytest.mark.parametrize("cli", CLIS)
def test_a_task_lands_through_each_vendor_cli(
    cli: str, project: Project, redis_url: str, tmp_path: Path, keys_set: dict[str, str]
) -> None:
    record = tmp_path / "shared" / "record.jsonl"
    record.parent.mkdir()
    rt = connect(make_settings(project, redis_url, vendors=vendors(record)))
    project.add_tasks({"alpha": task_file("Write alpha", "write src/alpha.txt alpha\nprint-key\nstream success")})
    assert pipeline(rt).run("alpha", cli) == "landed"
    assert project.show("src/alpha.txt") == "alpha"
    agent = rt.book.history("alpha")[-1].agent
    assert agent["outcome"] == "ok" and agent["session_id"] and agent["input_tokens"] > 0
    env = json.loads(record.read_text().splitlines()[0])["env"]
    assert [k for k in (*KEY_VARS, "SWARM_REDIS_URL") if k in env] == [OWN_KEY[cli]]
    log_dir = Path(rt.book.history("alpha")[-1].log_dir)
    for log in log_dir.glob("agent*.log"):
        assert keys_set[OWN_KEY[cli]] not in log.read_text(), f"{log.name} leaks the key"


@pytest.mark.parametrize("cli", CLIS)
def test_a_rate_limit_stream_ends_the_attempt_as_rate_limited(
    cli: str, project: Project, redis_url: str, keys_set: dict[str, str]
) -> None:
    rt = connect(make_settings(project, redis_url, vendors=vendors()))
    project.add_tasks({"limited": task_file("Limited", "resets-in 600\nwrite src/alpha.txt alpha\nstream rate_limit")})
    assert pipeline(rt).run("limited", cli) == "rejected"
    agent = rt.book.history("limited")[-1].agent
    assert agent["outcome"] == "rate_limited"
    assert "limited" not in project.landed()


def test_rate_limits_never_use_up_attempts_and_the_task_waits_longer_each_time(
    project: Project, redis_url: str, keys_set: dict[str, str]
) -> None:
    """max_attempts is 2 here: rate-limited runs never fail the task; runs in a row put it in a growing backoff."""
    rt = connect(make_settings(project, redis_url, vendors=vendors()))
    project.add_tasks({"limited": task_file("Limited", "resets-in 600\nstream rate_limit")})
    outcomes = []
    for _ in range(6):
        rt.ledger.clear("claude")  # an operator unblocking the vendor each time
        outcomes.append(pipeline(rt).run("limited", "claude"))
    assert outcomes == ["rejected"] * 6
    assert [h.reason for h in rt.book.history("limited")] == ["agent_rate_limited"] * 6
    budget = rt.book.budget("limited")
    assert budget.used == 0 and budget.runs == 6 and not rt.book.has_failed("limited")
    assert budget.backoff_s > 0, "dispatch holds the task back a while instead of sending it straight again"


def test_a_rate_limited_vendor_cools_for_every_worker_and_the_task_lands_through_another(
    project: Project, redis_url: str, keys_set: dict[str, str]
) -> None:
    """The quota calls here are what the pipeline makes after each agent run (see quota.after_run)."""
    rt = connect(make_settings(project, redis_url, vendors=vendors()))
    project.add_tasks(
        {"alpha": task_file("Alpha", "@1 resets-in 600\n@1 stream rate_limit\nwrite src/alpha.txt alpha")}
    )
    pipeline(rt, "w1").run("alpha", "claude")
    first = rt.book.history("alpha")[-1].agent
    rt.ledger.after_run("claude", "alpha", AgentResult(**_result_fields(first)))
    other_worker = connect(make_settings(project, redis_url, vendors=vendors()))
    assert other_worker.ledger.cooling("claude") == pytest.approx(600, abs=5)
    assert other_worker.ledger.blocked("codex") is None
    assert pipeline(other_worker, "w2").run("alpha", "codex") == "landed"
    assert project.show("src/alpha.txt") == "alpha"


def test_a_hanging_cli_is_killed_at_the_vendor_timeout_with_its_whole_group(
    project: Project, redis_url: str, tmp_path: Path, keys_set: dict[str, str]
) -> None:
    pids = tmp_path / "shared" / "pids"
    pids.parent.mkdir()
    rt = connect(make_settings(project, redis_url, vendors=vendors(shared=pids.parent, codex=2.0)))
    project.add_tasks({"stuck": task_file("Stuck", f"write src/alpha.txt alpha\nhang {pids}")})
    started = time.monotonic()
    assert pipeline(rt).run("stuck", "codex") == "rejected"
    assert time.monotonic() - started < 20
    assert rt.book.history("stuck")[-1].agent["outcome"] == "timeout"
    assert pids.exists(), "the fake CLI never started its child"
    # Its pids are of its sandbox's namespace: look for the child by what it runs and whose task it carries.
    left = [p.pid for p in psutil.process_iter() if _runs(p, ["sleep", "600"], "SWARM_TASK_ID=stuck")]
    assert not left, f"processes {left} outlived the timeout"


def _runs(p: psutil.Process, argv: list[str], marker: str) -> bool:
    try:
        env = p.environ()
        return p.cmdline() == argv and env.get(marker.split("=")[0]) == marker.split("=")[1]
    except (psutil.Error, OSError):
        return False


# --- vendor-level failures through the pipeline: the vendor is parked, the task is never charged ---


def test_a_vendor_failure_parks_the_vendor_and_never_uses_up_the_tasks_attempts(
    project: Project, redis_url: str, keys_set: dict[str, str]
) -> None:
    rt = connect(make_settings(project, redis_url, vendors=vendors(), max_attempts=1))
    project.add_tasks({"alpha": task_file("Alpha", "write src/alpha.txt alpha\nstream billing")})
    assert pipeline(rt).run("alpha", "codex") == "rejected"
    record = rt.book.history("alpha")[-1]
    assert record.reason == "agent_vendor_error" and record.detail.startswith("billing:")
    assert record.agent is not None and record.agent["fault"] == "vendor" and record.agent["reason"] == "billing"
    assert rt.book.budget("alpha").used == 0, "the attempt was not the task's to pay"
    assert not rt.book.has_failed("alpha")
    assert rt.ledger.vendor_state("codex")["state"] == "auth_error", "billing parks the vendor"
    assert pipeline(rt).run("alpha", "codex") == "cooling", "a parked vendor takes no task"
    assert len(rt.book.history("alpha")) == 1


def test_the_preflight_stops_a_vendor_with_no_login_before_any_attempt_or_oracle_work(
    project: Project, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in (*KEY_VARS, "CLAUDE_CODE_OAUTH_TOKEN", "CODEX_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    record = tmp_path / "shared" / "record.jsonl"
    record.parent.mkdir()
    rt = connect(make_settings(project, redis_url, vendors=vendors(record)))
    project.add_tasks({"alpha": task_file("Alpha", "write src/alpha.txt alpha")})
    assert pipeline(rt).run("alpha", "codex") == "cooling"
    assert rt.book.history("alpha") == [] and not record.exists()
    assert not list((rt.settings.workdir / "logs").glob("alpha/*/*oracle*")), "no oracle ran"
    assert rt.ledger.vendor_state("codex")["detail"].startswith("auth error: auth: codex: no login found")


# --- the real CLIs, where installed: no credentials must read as auth_error, well within the timeout ---


@pytest.mark.parametrize("cli", CLIS)
def test_the_real_cli_without_credentials_is_an_auth_error(
    cli: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which(cli) is None:
        pytest.skip(f"{cli} is not installed")
    for name in (*KEY_VARS, "GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_GENAI_USE_GCA"):
        monkeypatch.delenv(name, raising=False)
    run = agent_run(tmp_path, "Say hi.", timeout=90)
    started = time.monotonic()
    result = real_cli(cli).run(run)
    assert result.outcome == "auth_error", result.message
    assert time.monotonic() - started < 90


def _result_fields(record: dict[str, Any]) -> dict[str, Any]:
    fields = {k: v for k, v in record.items() if k in AgentResult.__dataclass_fields__}
    fields.pop("log_path", None)
    return fields


@pytest.fixture(scope="module")
def no_api_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[AgentResult, float]]:
    """Each real CLI with a key of its vendor and no reachable API, all at once."""

    def run(cli: str, folder: Path) -> AgentResult:
        return real_cli(cli, connect_timeout=20).run(agent_run(folder, "Say hi.", timeout=300))

    return real_clis_side_by_side(tmp_path_factory, run)


@pytest.mark.parametrize("cli", CLIS)
def test_the_real_cli_with_a_key_and_no_reachable_api_is_the_vendors_fault_well_within_the_timeout(
    cli: str, no_api_runs: dict[str, tuple[AgentResult, float]]
) -> None:
    """No network to the vendor here: each real CLI must end as a vendor-level failure, fast (claude after its
    lowered retries, codex and gemini, which retry on and on, at the connect timeout)."""
    if cli not in no_api_runs:
        pytest.skip(f"{cli} is not installed")
    result, seconds = no_api_runs[cli]
    assert result.fault == "vendor" and result.reason in ("network", "auth"), result.message
    assert seconds < 90, "far below the attempt timeout"


@pytest.mark.skipif(os.geteuid() != 0, reason="claude refuses bypassPermissions as root only")
def test_the_real_claude_refuses_bypass_mode_as_root_and_that_reads_as_refused(tmp_path: Path) -> None:
    if shutil.which("claude") is None:
        pytest.skip("claude is not installed")
    run = agent_run(tmp_path, "Say hi.", timeout=60)
    argv = [
        "claude",
        "-p",
        "hi",
        "--output-format",
        "stream-json",
        "--verbose",
        "--permission-mode",
        "bypassPermissions",
    ]
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "CLAUDE_CONFIG_DIR": str(tmp_path / "cfg")}
    launched = launch(run, argv, env, stderr_path=tmp_path / "err.log")  # the preflight would not let it start
    result = claude.parse(run.log_path, tmp_path / "err.log", launched.ended.returncode)
    assert (result.fault, result.reason) == ("vendor", "refused"), result.message


@pytest.mark.parametrize("cli", CLIS)
def test_doctor_on_the_real_cli_finds_it_its_flags_and_says_which_login(
    cli: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which(cli) is None:
        pytest.skip(f"{cli} is not installed")
    monkeypatch.setenv(OWN_KEY[cli], "sk-fake-0123456789abcdef")
    checks = real_cli(cli).check()
    assert all(ok for _, ok, _ in checks), checks
    assert checks[-1][2] == f"api key: API key from {OWN_KEY[cli]}"
