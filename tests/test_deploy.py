"""The deployment files agree with the CLI and the settings: docker-compose.yml (parsed) and the Procfile (run)."""

from __future__ import annotations

import base64
import fnmatch
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest
import yaml

from swarm.agents import registry
from swarm.agents.cli_adapter import CliAgent
from swarm.settings import Settings
from tests.cluster import write_config
from tests.conftest import TOY_REPO, Project, wait_for

ROOT = Path(__file__).resolve().parent.parent
VENDORS = ("claude", "codex", "gemini")


def compose() -> dict:  # type: ignore[type-arg]
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def test_compose_runs_one_worker_service_per_vendor_queue() -> None:
    services = compose()["services"]
    for vendor in VENDORS:
        command = services[f"worker-{vendor}"]["command"]
        assert command[:6] == ["celery", "-A", "swarm", "worker", "-Q", vendor]
        assert "-n" not in command, "a fixed node name would collide when the service is scaled"
    beats = [name for name, svc in services.items() if "beat" in svc.get("command", [])]
    assert beats == ["beat"], "exactly one beat"
    assert services["control"]["command"][:6] == ["celery", "-A", "swarm", "worker", "-Q", "merge"]


def test_compose_environment_names_real_settings() -> None:
    services = compose()["services"]
    fields = {name.upper() for name in Settings.model_fields}
    for name, svc in services.items():
        for key in svc.get("environment", {}) or {}:
            if key.startswith("SWARM_") and key != "SWARM_CONFIG":
                assert key.removeprefix("SWARM_") in fields, f"{name}: {key} is not a setting"
    workers = {n: s for n, s in services.items() if n.startswith("worker-")}
    keys = {"worker-claude": "ANTHROPIC_API_KEY", "worker-codex": "CODEX_API_KEY", "worker-gemini": "GEMINI_API_KEY"}
    redis_cmd = services["redis"]["command"]
    password = redis_cmd[redis_cmd.index("--requirepass") + 1]
    assert password.startswith("${REDIS_PASSWORD:-") and services["redis"]["environment"]["REDISCLI_AUTH"] == password
    for name, svc in workers.items():
        assert svc["environment"]["SWARM_REDIS_URL"] == f"redis://:{password}@redis:6379/0", name
        others = set(keys.values()) - {keys[name]}
        assert not others & set(svc["environment"]), f"{name} must not see other vendors' keys"


def test_compose_redis_never_evicts_and_persists_and_flower_has_auth() -> None:
    services = compose()["services"]
    redis_cmd = services["redis"]["command"]
    assert redis_cmd[redis_cmd.index("--maxmemory-policy") + 1] == "noeviction"
    assert redis_cmd[redis_cmd.index("--appendonly") + 1] == "yes"
    assert any(v.endswith(":/data") for v in services["redis"]["volumes"])
    assert "FLOWER_BASIC_AUTH" in services["flower"]["environment"]
    assert all(p.startswith("127.0.0.1:") for p in services["flower"]["ports"])


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line and not line.startswith("#"))


def test_procfile_has_the_same_processes_as_compose() -> None:
    procs = procfile()
    assert {f"worker_{v}" for v in VENDORS} <= set(procs)
    for vendor in VENDORS:
        assert procs[f"worker_{vendor}"].startswith(f"celery -A swarm worker -Q {vendor} ")
    assert procs["beat"].startswith("celery -A swarm beat")
    assert procs["control"].startswith("celery -A swarm worker -Q merge ")
    assert "noeviction" not in procs["redis"], "swarm redis sets noeviction itself"


def test_honcho_starts_a_worker_of_each_queue(project: Project, redis_url: str, tmp_path: Path) -> None:
    config = write_config(project, redis_url, {v: 1 for v in VENDORS})
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    env.update(SWARM_CONFIG=str(config), PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}")
    env["PYTHONPATH"] = str(ROOT)
    names = [f"worker_{v}" for v in VENDORS]
    log = tmp_path / "honcho.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "honcho", "-f", str(ROOT / "Procfile"), "-d", str(project.root), "start", *names],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            text = log.read_text(errors="replace")
            if all(f"{v}@" in text and "ready." in text.split(f"{v}@", 1)[1] for v in VENDORS):
                break
            assert proc.poll() is None, text
            time.sleep(0.2)
        text = log.read_text(errors="replace")
        for vendor in VENDORS:
            assert f"{vendor}@" in text and f".> {vendor} " in text, f"no worker consuming {vendor}:\n{text}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def git_files(folder: str) -> set[str]:
    out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", folder], capture_output=True, check=True)
    return {name for name in out.stdout.decode().split("\0") if name}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """swarm's wheel, built from this checkout the way pip builds it, unpacked."""
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
                           capture_output=True, text=True, timeout=600)  # fmt: skip
    assert build.returncode == 0, build.stderr[-3000:]
    [whl] = out.glob("swarm-*.whl")
    site = out / "site"
    with zipfile.ZipFile(whl) as archive:
        archive.extractall(site)
    return site


def test_the_wheel_carries_every_shipped_project_file_unchanged(wheel: Path) -> None:
    for folder in ("engine_repo_template", "examples"):
        tracked = git_files(folder)
        assert tracked, folder
        packed = {str(p.relative_to(wheel / "swarm" / "_data")) for p in (wheel / "swarm" / "_data" / folder).rglob("*")
                  if p.is_file()}  # fmt: skip
        assert packed == tracked, f"{folder}: only in the wheel {packed - tracked}, missing {tracked - packed}"
        for name in tracked:
            assert (wheel / "swarm" / "_data" / name).read_bytes() == (ROOT / name).read_bytes(), name
            assert not (wheel / "swarm" / "_data" / name).is_symlink()
    assert (wheel / "swarm" / "replay" / "lexer-complete.patch").is_file()


def test_swarm_init_and_the_examples_work_from_the_installed_wheel(wheel: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    env["PYTHONPATH"] = str(wheel)  # ahead of the editable install: this is the wheel's swarm
    code = "from swarm import templates as t; print(t.ENGINE); print(t.examples()['python'].solutions)"
    where = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                           check=True).stdout.split()  # fmt: skip
    assert all(Path(p).is_relative_to(wheel / "swarm" / "_data") for p in where), where
    done = subprocess.run([sys.executable, "-m", "swarm", "init", str(tmp_path / "proj")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "proj" / "work" / ".swarm.toml").is_file()
    assert (tmp_path / "proj" / "work" / "tasks").is_dir()


def test_swarm_init_writes_a_procfile_and_env_that_honcho_runs_as_is(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWARM_", "FLOWER_"))}
    env.update(PYTHONPATH=str(ROOT), PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}")
    init = subprocess.run([sys.executable, "-m", "swarm", "init", "proj", "--template", str(TOY_REPO)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert init.returncode == 0, init.stderr
    proj = tmp_path / "proj"
    assert (proj / "Procfile").read_text() == (ROOT / "Procfile").read_text(), "the repository's Procfile is it"
    dotenv = dict(ln.split("=", 1) for ln in (proj / ".env").read_text().splitlines() if ln and ln[0] != "#")
    assert dotenv["SWARM_REDIS_URL"] == f"redis://127.0.0.1:{dotenv['REDIS_PORT']}/0"
    log = tmp_path / "honcho.log"
    with open(log, "wb") as out:
        honcho = subprocess.Popen([sys.executable, "-m", "honcho", "start"], cwd=proj, env=env, stdout=out,
                                  stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:

        def all_ready() -> bool:
            lines = log.read_text(errors="replace").splitlines()
            names = ("claude@", "codex@", "gemini@", "merge@")
            return honcho.poll() is not None or all(any(n in ln and "ready." in ln for ln in lines) for n in names)

        wait_for(all_ready, 120, "every worker ready")
        text = log.read_text(errors="replace")
        assert honcho.poll() is None, text
        assert "beat: Starting" in text and f"redis at redis://127.0.0.1:{dotenv['REDIS_PORT']}" in text, text
        url = f"http://127.0.0.1:{dotenv['FLOWER_PORT']}/api/workers"
        wait_for(lambda: _status(url, None) in (200, 401), 60, "Flower answering")
        assert _status(url, None) == 401, "Flower asks for the password from .env"
        assert _status(url, dotenv["FLOWER_BASIC_AUTH"]) == 200
    finally:
        os.killpg(honcho.pid, signal.SIGTERM)
        honcho.wait(timeout=60)


def _status(url: str, auth: str | None) -> int:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


CI_RUN = (ROOT / ".ci" / "run").read_text()
DOCKERFILE = (ROOT / "Dockerfile").read_text()
AGENT_CLI = re.compile(r"(@anthropic-ai/claude-code|@openai/codex|@google/gemini-cli)@(\d[\w.-]*)")


def swarm_services() -> dict[str, dict]:  # type: ignore[type-arg]
    return {n: s for n, s in compose()["services"].items() if s.get("image") == "swarm-worker" and n != "seed-origin"}


def test_compose_commands_are_real_commands_and_options() -> None:
    from swarm.cli import cli

    for name, svc in compose()["services"].items():
        command = svc.get("command", [])
        if command[:1] == ["celery"]:
            assert command[1:3] == ["-A", "swarm"] and command[3] in ("worker", "beat", "flower"), name
            if command[3] == "worker":
                assert command[command.index("-Q") + 1] in (*VENDORS, "merge"), name
    script = compose()["services"]["seed-origin"]["command"][-1]
    used = re.findall(r"\bswarm (\w+)((?: [^|&;\n]*)?)", script)
    assert used, script
    for sub, args in used:
        assert sub in cli.commands, f"seed-origin runs `swarm {sub}`, which is not a command"
        options = {opt for p in cli.commands[sub].params for opt in getattr(p, "opts", [])}
        for flag in re.findall(r"--[\w-]+", args):
            assert flag in options, f"`swarm {sub}` has no option {flag}"
    assert "$$SEED_FROM" in script, "the shell reads SEED_FROM, not compose at parse time"


def test_compose_waits_for_health_and_a_seeded_origin_and_stops_gently() -> None:
    from swarm import launch, proc

    services = compose()["services"]
    for name, svc in swarm_services().items():
        assert svc["depends_on"] == {"redis": {"condition": "service_healthy"},
                                     "seed-origin": {"condition": "service_completed_successfully"}}, name  # fmt: skip
        if "worker" in svc["command"] or name == "flower":
            assert svc.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    assert services["redis"]["healthcheck"]["test"] and services["seed-origin"]["restart"] == "no"
    for name in ("worker-claude", "worker-codex", "worker-gemini", "control"):
        grace = services[name]["stop_grace_period"]
        seconds = int(grace[:-1]) * {"s": 1, "m": 60}[grace[-1]]
        assert seconds > launch.STOP_GRACE + proc.GRACE_SECONDS + 10, f"{name}: Docker's stop would kill attempts cold"
    assert ":?" not in (ROOT / "docker-compose.yml").read_text(), "a required variable stops every compose command"
    assert re.search(
        r"FLOWER_BASIC_AUTH: \$\{FLOWER_BASIC_AUTH:-\w+:[^}]+\}", (ROOT / "docker-compose.yml").read_text()
    )


def test_flower_keeps_its_history_on_a_volume_with_a_task_cap() -> None:
    flower = compose()["services"]["flower"]
    command = flower["command"]
    assert "--persistent=True" in command
    db = next(c for c in command if c.startswith("--db=")).removeprefix("--db=")
    assert any(db.startswith(v.split(":")[1] + "/") for v in flower["volumes"] if not v.startswith("./")), db
    assert int(next(c for c in command if c.startswith("--max_tasks=")).split("=")[1]) > 0
    assert "/var/lib/flower" in DOCKERFILE, "the image makes the folder Flower's volume starts from, owned by swarm"


def test_the_image_has_node_20_and_the_agent_clis_pinned_as_in_ci() -> None:
    node = re.search(r"ARG NODE_VERSION=(\d+)\.", DOCKERFILE)
    assert node and int(node.group(1)) >= 20, "gemini-cli needs Node 20 or newer"
    assert "FROM node:${NODE_VERSION}" in DOCKERFILE
    pins = dict(AGENT_CLI.findall(DOCKERFILE))
    assert pins == dict(AGENT_CLI.findall(CI_RUN)) and len(pins) == 3, (pins, AGENT_CLI.findall(CI_RUN))


def test_the_pinned_agent_clis_are_the_newest_versions_their_adapters_were_checked_against() -> None:
    newest: dict[str, str] = {}
    for cli in ("claude", "codex", "gemini"):
        agent = registry.make(cli, cli, {})
        assert isinstance(agent, CliAgent)
        newest[agent.package] = agent.checked_versions[1]
    assert dict(AGENT_CLI.findall(CI_RUN)) == newest, "pin what the adapters were checked against, or check them"


def test_dockerignore_keeps_the_context_small_and_the_copied_sources_in() -> None:
    ignored = [
        ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines() if ln.strip()[:1] not in ("", "#")
    ]
    for heavy in (".venv", "swarm-demo", ".swarm", "**/target", ".git"):
        assert heavy in ignored, heavy
    copied = [part for line in re.findall(r"^COPY (?!--from)(.+)$", DOCKERFILE, re.M) for part in line.split()[:-1]]
    assert {"swarm", "engine_repo_template", "examples", "setup.py", "MANIFEST.in", "pyproject.toml"} <= set(copied)
    for source in copied:
        assert (ROOT / source).exists(), source
        assert not any(fnmatch.fnmatch(source, pattern) for pattern in ignored), (
            f"{source} is excluded from the context"
        )


def test_oracles_see_the_rust_toolchain_the_image_sets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from swarm import oracle
    from swarm.settings import OracleSettings

    monkeypatch.setenv("RUSTUP_HOME", "/usr/local/rustup")
    monkeypatch.setenv("CARGO_HOME", "/usr/local/cargo")
    line = 'echo "{\\"passed\\": 1, \\"failed\\": 0, \\"tc\\": \\"$RUSTUP_HOME ${CARGO_HOME:-own}\\"}"'
    cfg = OracleSettings(fast=line, full=line)
    result = oracle.run(cfg, "full", tmp_path, tmp_path / "o.log", tmp_path / "cache", "a1", 60)
    assert result.summary.get("tc") == "/usr/local/rustup own", "the toolchain is found; the cargo home is the run's"


def docker_engine() -> bool:
    if shutil.which("docker") is None:
        return False
    probes = (["docker", "info"], ["docker", "compose", "version"])
    return all(subprocess.run(p, capture_output=True, timeout=60).returncode == 0 for p in probes)


@pytest.mark.skipif(not docker_engine(), reason="no Docker engine with compose here: the checks above cover the files")
def test_compose_config_and_the_image_build_where_docker_exists(tmp_path: Path) -> None:
    (tmp_path / "swarm.toml").write_text("")
    run = subprocess.run(["docker", "compose", "-f", str(ROOT / "docker-compose.yml"), "config", "-q"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr
    build = subprocess.run(["docker", "build", "-q", "-t", "swarm-worker-test", str(ROOT)], capture_output=True,
                           text=True, timeout=3600)  # fmt: skip
    assert build.returncode == 0, build.stderr[-3000:]
    node = subprocess.run(["docker", "run", "--rm", "swarm-worker-test", "node", "--version"], capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert int(node.stdout.strip().lstrip("v").split(".")[0]) >= 20
