"""`swarm exporter` against a real Redis after real attempts: the /metrics text, parsed as Prometheus reads it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from swarm import dispatch
from swarm.agents import registry
from swarm.launch import free_port
from swarm.pipeline import Pipeline
from swarm.runtime import Runtime, connect
from swarm.train import Car
from tests.agents.helpers import BIN, DATA
from tests.cluster import REPO_ROOT
from tests.conftest import SCRIPTED_AGENT, Project, announce_slots, make_settings, task_file, vendor_table, wait_for

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def run(rt: Runtime, task_id: str, vendor: str) -> str:
    def agent(name: str):  # type: ignore[no-untyped-def]
        table = rt.settings.vendors[name]
        return registry.make(name, table.adapter, table.options())

    return Pipeline.on(rt, agent, "w1").run(task_id, vendor)


def claude_table() -> dict[str, object]:
    """The claude adapter on the fake claude CLI, which reports tokens and cost as the real one does."""
    env = {"IS_SANDBOX": "1"} if os.geteuid() == 0 else {}  # claude refuses its bypass mode as root otherwise
    return {"adapter": "claude", "binary": str(BIN / "claude"), "env": env, "concurrency": 2,
            "sandbox_ro": [str(DATA)]}  # fmt: skip


def write_toml(project: Project, redis_url: str) -> Path:
    command = json.dumps([sys.executable, str(SCRIPTED_AGENT), "{prompt_file}"])
    sandbox = 'IS_SANDBOX = "1"' if os.geteuid() == 0 else ""
    path = project.root / "swarm.toml"
    path.write_text(
        f'redis_url = "{redis_url}"\norigin = "{project.origin}"\nworkdir = "{project.workdir}"\n\n'
        f'[vendors.claude]\nadapter = "claude"\nbinary = "{BIN / "claude"}"\nconcurrency = 2\n'
        f'sandbox_ro = ["{DATA}"]\n'
        f"env = {{ {sandbox} }}\n\n"
        f'[vendors.codex]\nadapter = "command"\ncommand = {command}\n'
    )
    return path


def with_areas(project: Project) -> None:
    """The toy oracle also reports its cases per area, as the engine's oracle does."""
    oracle = project.clone / "oracle.py"
    oracle.write_text(oracle.read_text().replace(
        '"skipped": 0}', '"skipped": 0, "areas": {"checks": {"passed": passed, "failed": failed}}}'
    ))  # fmt: skip
    project.commit_all("The oracle reports areas")


@pytest.fixture
def exporter(project: Project, redis_url: str) -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    env.update(SWARM_CONFIG=str(write_toml(project, redis_url)), PYTHONPATH=str(REPO_ROOT))
    argv = [sys.executable, "-m", "swarm", "exporter", "--address", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(argv, cwd=project.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        yield f"http://127.0.0.1:{port}/metrics"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
        print(out.decode(errors="replace")[-4000:])


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=60) as resp:
        text = resp.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in text_string_to_metric_families(text)
            for s in f.samples}  # fmt: skip


def answers(url: str) -> bool:
    try:
        scrape(url)
    except OSError:
        return False
    return True


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def test_the_exporter_reports_landings_rejections_main_spend_slots_and_durations(
    project: Project, redis_url: str, exporter: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-anthropic-0123456789")
    with_areas(project)
    project.add_tasks({
        "alpha": task_file("Write alpha", "write src/alpha.txt alpha\nstream success", priority=9),
        "broken": task_file("Break it", "write src/b.txt BREAK"),
        "waiting": task_file("Waits for alpha2", "write src/w.txt w", depends_on=["nothing"]),
    })  # fmt: skip
    # Both tiers run (no skipping the fast one), so the oracle's durations are kept by tier.
    settings = make_settings(project, redis_url, vendors={"claude": claude_table(), "codex": vendor_table()},
                             fast_tier="always")  # fmt: skip
    rt = connect(settings)
    announce_slots(redis.Redis.from_url(redis_url), settings)  # live workers' slots: claude 2, codex 1
    assert run(rt, "alpha", "claude") == "landed"
    assert run(rt, "broken", "codex") == "rejected"
    queued: list[tuple[str, str]] = []
    dispatch.dispatch(rt, lambda task, vendor: queued.append((task, vendor)))
    assert [t for t, _ in queued] == ["broken"]
    lease = rt.leases.acquire_task("waiting", 60, worker="w9", vendor="claude")
    assert lease is not None
    # An attempt whose candidate rides the train with its slot given back holds a lease but no slot.
    riding = rt.leases.acquire_task("riding", 60, worker="w8", vendor="claude")
    assert riding is not None
    rt.train._join(Car("riding:1", freed=True))

    wait_for(lambda: answers(exporter), 60, "the exporter to answer")
    m = scrape(exporter)
    assert value(m, "swarm_up") == 1
    assert value(m, "swarm_landings_total") == 1
    assert value(m, "swarm_attempts_total", outcome="landed", reason="") == 1
    assert value(m, "swarm_attempts_total", outcome="rejected", reason="oracle_red") == 1
    main_counts = rt.baselines.get(project.main_log()[0])
    assert main_counts is not None and value(m, "swarm_main_passing") == main_counts.passed == 2
    assert value(m, "swarm_main_area_passing", area="checks") == 2
    assert value(m, "swarm_tasks", state="landed") == 1 and value(m, "swarm_tasks", state="queued") == 1
    assert value(m, "swarm_queue_depth", vendor=queued[0][1]) == 1
    assert value(m, "swarm_leases") == 2 and value(m, "swarm_slots_busy", vendor="claude") == 1
    assert value(m, "swarm_train_depth") == 1 and value(m, "swarm_train_riders") == 1
    assert value(m, "swarm_slots", vendor="claude") == 2 and value(m, "swarm_slots", vendor="codex") == 1
    spent = rt.ledger.spend_total("claude")
    assert spent["input_tokens"] > 0 and spent["cost_usd"] > 0
    assert value(m, "swarm_tokens_total", vendor="claude", kind="input") == spent["input_tokens"]
    assert value(m, "swarm_spend_usd_total", vendor="claude") == pytest.approx(spent["cost_usd"])
    assert value(m, "swarm_vendor_state", vendor="claude", state="active") == 1
    assert value(m, "swarm_vendor_state", vendor="claude", state="cooling") == 0
    assert value(m, "swarm_agent_seconds_count", vendor="claude") == 1
    assert value(m, "swarm_agent_seconds_count", vendor="codex") == 1
    assert value(m, "swarm_oracle_seconds_count", tier="fast") == 2
    assert value(m, "swarm_oracle_seconds_count", tier="full") >= 1
    assert value(m, "swarm_agent_seconds_sum", vendor="claude") > 0

    # A later scrape adds only what happened since: one more rejected attempt, one more agent run.
    rt.leases.release(lease)
    rt.leases.release(riding)
    assert run(rt, "broken", "codex") == "failed"
    m = scrape(exporter)
    assert value(m, "swarm_attempts_total", outcome="rejected", reason="oracle_red") == 2
    assert value(m, "swarm_agent_seconds_count", vendor="codex") == 2
    assert value(m, "swarm_tasks", state="failed") == 1 and value(m, "swarm_leases") == 0


def test_the_exporter_says_it_is_down_when_redis_is_gone(project: Project, redis_url: str) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    dead = f"redis://127.0.0.1:{free_port()}/0"
    env.update(SWARM_CONFIG=str(write_toml(project, dead)), PYTHONPATH=str(REPO_ROOT))
    argv = [sys.executable, "-m", "swarm", "exporter", "--address", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(argv, cwd=project.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        wait_for(lambda: answers(url), 60, "the exporter to answer")
        m = scrape(url)
        assert value(m, "swarm_up") == 0
        assert not [name for name, _ in m if name.startswith("swarm_landings")]
    finally:
        proc.terminate()
        proc.communicate(timeout=20)


ROOT = Path(__file__).resolve().parent.parent


def test_the_grafana_dashboard_and_the_compose_profile_use_what_the_exporter_serves(
    project: Project, redis_url: str, exporter: str
) -> None:
    import re

    import yaml

    wait_for(lambda: answers(exporter), 60, "the exporter to answer")
    with urllib.request.urlopen(exporter, timeout=60) as resp:
        served = {f.name for f in text_string_to_metric_families(resp.read().decode())}
    dashboard = json.loads((ROOT / "grafana" / "dashboards" / "swarm.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {re.sub(r"_(total|bucket|count|sum)$", "", n) for e in exprs for n in re.findall(r"\bswarm_[a-z_]+", e)}
    assert len(used) >= 15
    assert used <= served, f"the dashboard asks for families the exporter does not serve: {used - served}"

    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    profiled = {name for name, s in services.items() if "metrics" in s.get("profiles", [])}
    assert profiled == {"exporter", "prometheus", "grafana"}
    assert services["exporter"]["command"][:2] == ["swarm", "exporter"]
    port = services["exporter"]["command"][-1]
    prom = yaml.safe_load((ROOT / "grafana" / "prometheus.yml").read_text())
    assert [f"exporter:{port}"] in [c["targets"] for j in prom["scrape_configs"] for c in j["static_configs"]]
    for mount in services["grafana"]["volumes"] + services["prometheus"]["volumes"]:
        source = mount.split(":")[0]
        assert not source.startswith("./") or (ROOT / source).exists(), f"{source} is missing"
    datasource = yaml.safe_load((ROOT / "grafana/provisioning/datasources/prometheus.yml").read_text())
    assert datasource["datasources"][0]["uid"] == dashboard["panels"][0]["datasource"]["uid"]
