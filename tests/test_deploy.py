"""The deployment files agree with the CLI and the settings: docker-compose.yml (parsed) and the Procfile (run)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import yaml

from swarm.settings import Settings
from tests.cluster import write_config
from tests.conftest import Project

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
    for name, svc in workers.items():
        assert svc["environment"]["SWARM_REDIS_URL"] == "redis://redis:6379/0"
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
