"""Settings: where they come from (swarm.toml in the cwd or $SWARM_CONFIG, .env, SWARM_* variables, keywords),
and that every bad one stops start-up with a SettingsError naming the setting, its source and what is wrong."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from swarm.errors import SettingsError
from swarm.settings import Settings, config_file, load_settings, parse_repo_settings

VENDOR = '[vendors.claude]\nadapter = "command"\ncommand = ["claude-cli", "{prompt_file}"]\n'


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No SWARM_* variables from the outside, and a cwd of our own (no stray swarm.toml or .env)."""
    for name in list(os.environ):
        if name.upper().startswith("SWARM_"):
            monkeypatch.delenv(name)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_without_any_file() -> None:
    s = load_settings()
    assert s.redis_url is None and s.origin is None and s.vendors == {}
    assert (s.lease_ttl, s.max_attempts, s.branch, s.control_queue) == (30.0, 3, "main", "merge")
    assert s.reap_every == 10.0


def test_swarm_toml_is_read_from_the_cwd(clean_env: Path) -> None:
    write(clean_env / "swarm.toml", f'redis_url = "redis://h:1/2"\nlease_ttl = 5\nmax_attempts = 7\n{VENDOR}')
    s = load_settings()
    assert s.redis_url == "redis://h:1/2" and s.lease_ttl == 5.0 and s.max_attempts == 7
    assert s.vendors["claude"].adapter == "command"
    assert s.vendors["claude"].options() == {"command": ["claude-cli", "{prompt_file}"]}
    assert config_file() == Path("swarm.toml")


def test_swarm_config_names_the_file(clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(clean_env / "swarm.toml", "lease_ttl = 5\n")
    other = write(tmp_path / "elsewhere" / "deploy.toml", "lease_ttl = 11\n")
    monkeypatch.setenv("SWARM_CONFIG", str(other))
    assert load_settings().lease_ttl == 11.0, "SWARM_CONFIG wins over ./swarm.toml"
    assert config_file() == other


def test_an_explicit_config_path_wins_over_swarm_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWARM_CONFIG", str(write(tmp_path / "a.toml", "lease_ttl = 11\n")))
    assert load_settings(write(tmp_path / "b.toml", "lease_ttl = 12\n")).lease_ttl == 12.0
    assert config_file() == tmp_path / "a.toml", "the explicit path does not leak past load_settings"


def test_env_overrides_the_file_and_keywords_override_env(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(clean_env / "swarm.toml", 'lease_ttl = 5\nmax_attempts = 2\nbranch = "trunk"\n')
    monkeypatch.setenv("SWARM_LEASE_TTL", "9")
    monkeypatch.setenv("SWARM_KEEP_WORKTREES", "true")
    s = load_settings()
    assert (s.lease_ttl, s.max_attempts, s.branch, s.keep_worktrees) == (9.0, 2, "trunk", True)
    assert load_settings(lease_ttl=1.5).lease_ttl == 1.5


def test_nested_env_sets_one_field_of_a_vendor_table(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(clean_env / "swarm.toml", VENDOR + "concurrency = 1\n")
    monkeypatch.setenv("SWARM_VENDORS__CLAUDE__CONCURRENCY", "4")
    vendor = load_settings().vendors["claude"]
    assert vendor.concurrency == 4
    assert vendor.adapter == "command" and vendor.options()["command"] == ["claude-cli", "{prompt_file}"], (
        "the rest of the table still comes from the file"
    )


def test_nested_env_can_define_a_whole_vendor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWARM_VENDORS__GEMINI__ADAPTER", "command")
    monkeypatch.setenv("SWARM_VENDORS__GEMINI__COMMAND", '["gemini", "{prompt_file}"]')
    monkeypatch.setenv("SWARM_VENDORS__GEMINI__CONCURRENCY", "3")
    vendor = load_settings().vendors["gemini"]
    assert vendor.concurrency == 3 and vendor.options()["command"] == ["gemini", "{prompt_file}"]


def test_dotenv_in_the_cwd_is_read(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(clean_env / "swarm.toml", "lease_ttl = 5\nmax_attempts = 4\n")
    write(clean_env / ".env", "SWARM_LEASE_TTL=7\n")
    s = load_settings()
    assert s.lease_ttl == 7.0 and s.max_attempts == 4
    monkeypatch.setenv("SWARM_LEASE_TTL", "8")
    assert load_settings().lease_ttl == 8.0, "the environment wins over .env"


def test_dotenv_with_other_variables_is_accepted(clean_env: Path) -> None:
    write(clean_env / ".env", "ANTHROPIC_API_KEY=sk-test\nSWARM_LEASE_TTL=7\n")
    assert load_settings().lease_ttl == 7.0


def test_require_names_the_setting_and_its_env_var(clean_env: Path) -> None:
    s = load_settings()
    with pytest.raises(SettingsError) as info:
        s.require("origin")
    assert "'origin'" in str(info.value) and "SWARM_ORIGIN" in str(info.value) and "swarm.toml" in str(info.value)
    with pytest.raises(SettingsError, match="SWARM_REDIS_URL"):
        s.require("redis_url")
    Settings(redis_url="redis://x:1/0", origin="/o").require("redis_url", "origin")  # set: no error


def test_require_treats_an_empty_value_as_unset() -> None:
    with pytest.raises(SettingsError, match="'origin'"):
        Settings(origin="").require("origin")


V = 'adapter = "command"\ncommand = ["x", "{prompt_file}"]\n'
# (name, swarm.toml text or None, env, words the message must contain: the setting's name first).
BAD: list[tuple[str, str | None, dict[str, str], tuple[str, ...]]] = [
    ("redis url scheme", 'redis_url = "http://localhost:6379"\n', {}, ("redis_url", "not a Redis URL")),
    ("redis url without scheme", 'redis_url = "localhost:6379"\n', {}, ("redis_url", "not a Redis URL")),
    ("redis url from env", None, {"SWARM_REDIS_URL": "ftp://x"}, ("redis_url", "SWARM_REDIS_URL")),
    ("negative lease_ttl", "lease_ttl = -1\n", {}, ("lease_ttl", "greater than 0")),
    ("zero lease_ttl", "lease_ttl = 0\n", {}, ("lease_ttl", "greater than 0")),
    ("lease_ttl not a number in env", None, {"SWARM_LEASE_TTL": "soon"}, ("lease_ttl", "number")),
    ("max_attempts 0", "max_attempts = 0\n", {}, ("max_attempts", "greater than or equal to 1")),
    ("land_retries too many", "land_retries = 50\n", {}, ("land_retries", "less than or equal")),
    ("negative agent_timeout", "agent_timeout = -5\n", {}, ("agent_timeout", "greater than 0")),
    ("oracle_timeout a string", 'oracle_timeout = "long"\n', {}, ("oracle_timeout", "number")),
    ("unknown key", "leese_ttl = 3\n", {}, ("leese_ttl", "not permitted")),
    ("workdir a number", "workdir = 5\n", {}, ("workdir", "path")),
    ("workdir a table", "[workdir]\na = 1\n", {}, ("workdir",)),
    ("keep_worktrees not a bool", 'keep_worktrees = "maybe"\n', {}, ("keep_worktrees", "boolean")),
    ("vendors not a table", 'vendors = "claude"\n', {}, ("vendors", "dictionary")),
    ("unknown adapter", '[vendors.x]\nadapter = "nope"\ncommand = ["x"]\n', {}, ("vendors.x.adapter", "nope")),
    ("vendor without adapter", '[vendors.x]\ncommand = ["x"]\n', {}, ("vendors.x.adapter", "required")),
    ("upper case vendor", f"[vendors.Claude]\n{V}", {}, ("vendors", "Claude")),
    ("vendor name with a space", f'[vendors."my vendor"]\n{V}', {}, ("vendors", "my vendor")),
    ("vendor name with a dot", f'[vendors."a.b"]\n{V}', {}, ("vendors", "a.b")),
    ("vendor named like the control queue", f"[vendors.merge]\n{V}", {}, ("merge", "control_queue")),
    ("vendor named like a custom control queue", f'control_queue = "ctl"\n[vendors.ctl]\n{V}', {}, ("ctl",)),
    ("command adapter without command", '[vendors.x]\nadapter = "command"\n', {}, ("vendors.x.command", "required")),
    ("command empty", '[vendors.x]\nadapter = "command"\ncommand = []\n', {}, ("vendors.x.command", "at least 1")),
    ("command not a list", '[vendors.x]\nadapter = "command"\ncommand = "x"\n', {}, ("vendors.x.command", "list")),
    (
        "unknown placeholder",
        '[vendors.x]\nadapter = "command"\ncommand = ["x", "{prompt}"]\n',
        {},
        ("vendors.x.command", "prompt", "placeholder"),
    ),
    (
        "broken brace",
        '[vendors.x]\nadapter = "command"\ncommand = ["x", "{prompt_file"]\n',
        {},
        ("vendors.x.command", "{prompt_file"),
    ),
    ("unknown adapter option", f"[vendors.x]\n{V}colour = 1\n", {}, ("vendors.x.colour", "not permitted")),
    ("concurrency 0", f"[vendors.x]\n{V}concurrency = 0\n", {}, ("vendors.x.concurrency", "greater than or equal")),
    ("concurrency from env", f"[vendors.x]\n{V}", {"SWARM_VENDORS__X__CONCURRENCY": "0"}, ("vendors.x.concurrency",)),
    ("vendor timeout negative", f"[vendors.x]\n{V}timeout = -1\n", {}, ("vendors.x.timeout", "greater than 0")),
    ("vendor timeout a string", f'[vendors.x]\n{V}timeout = "abc"\n', {}, ("vendors.x.timeout", "number")),
    ("invalid TOML", "lease_ttl = [\n", {}, ("swarm.toml", "TOML")),
    ("invalid TOML duplicate key", "lease_ttl = 1\nlease_ttl = 2\n", {}, ("swarm.toml", "TOML")),
    ("SWARM_CONFIG missing", None, {"SWARM_CONFIG": "/nonexistent/deploy.toml"}, ("SWARM_CONFIG", "deploy.toml")),
    ("SWARM_CONFIG a folder", None, {"SWARM_CONFIG": "/"}, ("SWARM_CONFIG", "not a file")),
    ("empty branch", 'branch = ""\n', {}, ("branch",)),
    ("control queue not a queue name", 'control_queue = "Bad Name"\n', {}, ("control_queue",)),
]
SETTINGS_BUGS: dict[str, str] = {}


def _bad_cases() -> list[object]:
    return [
        pytest.param(
            *c[1:],
            id=c[0],
            marks=[pytest.mark.xfail(strict=True, reason=SETTINGS_BUGS[c[0]])] if c[0] in SETTINGS_BUGS else [],
        )
        for c in BAD
    ]


@pytest.mark.parametrize(("toml", "env", "words"), _bad_cases())
def test_a_bad_setting_raises_a_settings_error_naming_it(
    toml: str | None, env: dict[str, str], words: tuple[str, ...], clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if toml is not None:
        write(clean_env / "swarm.toml", toml)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} missing from: {message}"
    if toml is not None:
        assert "swarm.toml" in message, "the message names the file"
    assert "Traceback" not in message and "pydantic" not in message.lower()


def test_the_bad_settings_table_is_big_enough() -> None:
    assert len(BAD) >= 15


def test_errors_in_a_swarm_config_file_name_that_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write(tmp_path / "deploy" / "prod.toml", "lease_ttl = -3\n")
    monkeypatch.setenv("SWARM_CONFIG", str(config))
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert str(config) in str(info.value) and "lease_ttl" in str(info.value)
    write(config, "lease_ttl = \n")
    with pytest.raises(SettingsError, match=re.escape(str(config))):
        load_settings()


def test_an_explicit_config_that_is_missing_is_named(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=re.escape(str(tmp_path / "nope.toml"))):
        load_settings(tmp_path / "nope.toml")


def test_every_bad_setting_is_listed_not_only_the_first(clean_env: Path) -> None:
    write(clean_env / "swarm.toml", "lease_ttl = 0\nmax_attempts = 0\nworkdir = 3\n")
    message = str(pytest.raises(SettingsError, load_settings).value)
    assert all(name in message for name in ("lease_ttl", "max_attempts", "workdir"))


@pytest.mark.parametrize(
    "toml",
    ['[vendors.x]\nadapter = "nope"\ncommand = ["x"]\n', f"[vendors.merge]\n{V}"],
    ids=["unknown adapter", "vendor named like the control queue"],
)
def test_the_env_var_named_in_an_error_is_a_real_one(toml: str, clean_env: Path) -> None:
    write(clean_env / "swarm.toml", toml)
    message = str(pytest.raises(SettingsError, load_settings).value)
    for env_name in (n.rstrip(":),.") for n in re.findall(r"SWARM_\S+", message)):
        assert re.fullmatch(r"SWARM_[A-Z0-9_]+", env_name), f"{env_name!r} is not a variable one could set"
    assert "(top level)" not in message


# --- repository settings: .swarm.toml of the target repository ---

ORACLE = '[oracle]\nfast = "python3 oracle.py --fast"\nfull = "python3 oracle.py"\n'
WHERE = "origin main:.swarm.toml"


def test_repo_settings_parse_with_defaults() -> None:
    rs = parse_repo_settings('protected = ["oracle.py", "checks/**"]\nbacklog = "work/tasks/"\n' + ORACLE, WHERE)
    assert rs.backlog == "work/tasks" and rs.prompt == "AGENT_PROMPT.md" and rs.on_protected == "restore"
    assert rs.protected == ["oracle.py", "checks/**"]
    assert rs.oracle.fast == "python3 oracle.py --fast" and rs.oracle.timeout == 900.0 and rs.oracle.env == {}


REPO_BAD: list[tuple[str, str, tuple[str, ...]]] = [
    ("missing oracle", 'backlog = "tasks"\n', ("oracle", "required")),
    ("unknown key", "bogus = 1\n" + ORACLE, ("bogus", "not permitted")),
    ("unknown oracle key", ORACLE + 'fsat = "x"\n', ("oracle.fsat", "not permitted")),
    ("absolute backlog", 'backlog = "/etc"\n' + ORACLE, ("backlog", "inside the repository")),
    ("backlog going up", 'backlog = "../elsewhere"\n' + ORACLE, ("backlog", "inside the repository")),
    ("backlog going up in the middle", 'backlog = "a/../../b"\n' + ORACLE, ("backlog", "inside the repository")),
    ("absolute prompt", 'prompt = "/etc/passwd"\n' + ORACLE, ("prompt", "inside the repository")),
    ("bad on_protected", 'on_protected = "ignore"\n' + ORACLE, ("on_protected", "restore", "reject")),
    ("protected not a list", 'protected = "oracle.py"\n' + ORACLE, ("protected", "list")),
    ("empty fast oracle", '[oracle]\nfast = ""\nfull = "x"\n', ("oracle.fast",)),
    ("missing full oracle", '[oracle]\nfast = "x"\n', ("oracle.full", "required")),
    ("zero oracle timeout", ORACLE + "timeout = 0\n", ("oracle.timeout", "greater than 0")),
    ("oracle env not strings", ORACLE + "env = { A = 1 }\n", ("oracle.env.A", "string")),
    ("invalid TOML", "[oracle\n", ("not valid TOML",)),
    ("empty backlog path", 'backlog = ""\n' + ORACLE, ("backlog",)),
]
REPO_BUGS: dict[str, str] = {}


@pytest.mark.parametrize(
    ("text", "words"),
    [
        pytest.param(
            *c[1:], id=c[0], marks=[pytest.mark.xfail(strict=True, reason=REPO_BUGS[c[0]])] if c[0] in REPO_BUGS else []
        )
        for c in REPO_BAD
    ],
)
def test_bad_repo_settings_name_the_file_and_the_field(text: str, words: tuple[str, ...]) -> None:
    with pytest.raises(SettingsError) as info:
        parse_repo_settings(text, WHERE)
    message = str(info.value)
    assert ".swarm.toml" in message
    for word in words:
        assert word in message, f"{word!r} missing from: {message}"
