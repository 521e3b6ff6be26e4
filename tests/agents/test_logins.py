"""The logins people use, recognised by each adapter: API keys, subscription tokens, cloud (Vertex) and the
credentials file a `<cli> login` leaves, shared by the slots through one link (never copies of refresh tokens)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from swarm.agents import logins, registry
from swarm.agents.cli_adapter import CliAgent
from tests.agents.helpers import BIN, KEY_VARS, agent_run, script

LOGIN_VARS = (*KEY_VARS, "CLAUDE_CODE_OAUTH_TOKEN", "CLAUDE_CODE_USE_VERTEX", "CLAUDE_CODE_USE_BEDROCK",
              "CLAUDE_CONFIG_DIR", "CODEX_HOME", "GEMINI_CLI_HOME", "GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_GENAI_USE_GCA",
              "GOOGLE_CLOUD_PROJECT")  # fmt: skip
CREDENTIALS = {"claude": ".claude/.credentials.json", "codex": ".codex/auth.json", "gemini": ".gemini/oauth_creds.json"}
SLOT_FILE = {"claude": ".credentials.json", "codex": "auth.json", "gemini": ".gemini/oauth_creds.json"}


@pytest.fixture
def user_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No login anywhere: no key, no token, an empty HOME of the swarm's user."""
    for name in LOGIN_VARS:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "user"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


def adapter(cli: str, **options: object) -> CliAgent:
    sandbox = {"IS_SANDBOX": "1"} if cli == "claude" and os.geteuid() == 0 else {}
    env = {**sandbox, **options.pop("env", {})}  # type: ignore[dict-item]
    agent = registry.make(cli, cli, {"binary": str(BIN / cli), "env": env, **options})
    assert isinstance(agent, CliAgent)
    return agent


def login_line(agent: CliAgent) -> tuple[bool, str]:
    name, ok, detail = agent.login_check()
    assert name == f"vendor {agent.vendor} login"
    return ok, detail


def test_a_claude_subscription_token_is_a_login_of_its_own_and_reaches_the_cli(
    user_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-subscription-token-0123456789")
    agent = adapter("claude", env={"FAKE_CLI_RECORD": str(tmp_path / "rec.jsonl")})
    assert login_line(agent) == (True, "token: subscription/OAuth token from CLAUDE_CODE_OAUTH_TOKEN")
    run = agent_run(tmp_path, script("print-key"))
    assert agent.run(run).outcome == "ok"
    env = json.loads((tmp_path / "rec.jsonl").read_text())["env"]
    assert env["CLAUDE_CODE_OAUTH_TOKEN"] == "sk-ant-oat01-subscription-token-0123456789"
    assert "ANTHROPIC_API_KEY" not in env, "a token is never sent as an API key"


@pytest.mark.parametrize("cli", ["claude", "codex", "gemini"])
def test_a_logged_in_credentials_file_is_linked_into_the_slot_never_copied(
    cli: str, user_home: Path, tmp_path: Path
) -> None:
    source = user_home / CREDENTIALS[cli]
    source.parent.mkdir(parents=True)
    source.write_text('{"refresh_token": "rt-single-use"}')
    agent = adapter(cli)
    ok, detail = login_line(agent)
    assert ok and detail.startswith(f"credentials file: logged-in credentials {source}")
    for slot in ("slot-a", "slot-b"):
        run = agent_run(tmp_path / slot, script("write src/x.txt x"))
        result = agent.run(run)
        assert result.outcome == "ok", result.message
        link = run.home / cli / SLOT_FILE[cli]
        assert link.is_symlink() and link.resolve() == source.resolve(), "one file for every slot"


def test_a_token_the_cli_refreshed_in_place_of_the_link_becomes_the_shared_one(tmp_path: Path) -> None:
    source = tmp_path / "user" / "auth.json"
    source.parent.mkdir()
    source.write_text("old")
    link = tmp_path / "slot" / "auth.json"
    logins.share(source, link)
    link.unlink()
    link.write_text("refreshed")  # an atomic rewrite by the CLI replaced our link by a file
    os.utime(source, (1, 1))
    logins.share(source, link)
    assert source.read_text() == "refreshed" and link.is_symlink()
    assert oct(source.stat().st_mode & 0o777) == oct(0o600)


def test_gemini_on_vertex_through_pass_env_is_a_login(user_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_GENAI_USE_VERTEXAI", "true")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "my-project")
    plain = adapter("gemini")
    assert login_line(plain)[0] is False, "the CLI would not see Vertex unless pass_env lets it"
    vertex = adapter("gemini", pass_env=["GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_CLOUD_PROJECT"])
    ok, detail = login_line(vertex)
    assert ok and detail.startswith("cloud: cloud provider via GOOGLE_GENAI_USE_VERTEXAI=true")
    assert vertex.preflight(user_home / "slot") is None


def test_gemini_with_its_oauth_file_selects_the_oauth_login_in_the_slots_settings(
    user_home: Path, tmp_path: Path
) -> None:
    (user_home / ".gemini").mkdir()
    (user_home / ".gemini" / "oauth_creds.json").write_text("{}")
    agent = adapter("gemini")
    run = agent_run(tmp_path)
    agent.env(run, run.home / "gemini")
    settings = json.loads((run.home / "gemini" / ".gemini" / "settings.json").read_text())
    assert settings["security"]["auth"]["selectedType"] == "oauth-personal"


def test_a_codex_login_done_in_the_slot_itself_passes_the_preflight(user_home: Path, tmp_path: Path) -> None:
    agent = adapter("codex")
    assert agent.preflight(tmp_path / "slot") is not None
    (tmp_path / "slot" / "codex").mkdir(parents=True)
    (tmp_path / "slot" / "codex" / "auth.json").write_text("{}")
    assert agent.preflight(tmp_path / "slot") is None


def test_an_api_key_wins_and_doctor_says_which_variable(user_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEAM_KEY", "sk-team-0123456789abcdef")
    monkeypatch.setenv("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-0123456789abcdef")
    assert login_line(adapter("claude", api_key_env="TEAM_KEY")) == (True, "api key: API key from TEAM_KEY")
