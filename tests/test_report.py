"""`swarm report`: a self-contained HTML page about a real run, opened in headless Chromium."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from swarm.counts import Counts
from swarm.runtime import connect
from tests import browser
from tests.cluster import REPO_ROOT
from tests.conftest import Project, make_settings, task_file, vendor_table
from tests.test_exporter import claude_table, run, with_areas, write_toml


def test_the_report_shows_main_landings_attempts_time_and_spend_and_renders_in_a_browser(
    project: Project, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-anthropic-0123456789")
    with_areas(project)
    project.add_tasks({
        "alpha": task_file("Write alpha", "write src/alpha.txt alpha\nstream success", priority=9),
        "beta": task_file("Write beta", "write src/beta.txt beta", priority=5),
        "broken": task_file("Break it", "write src/b.txt BREAK"),
    })  # fmt: skip
    rt = connect(make_settings(project, redis_url, vendors={"claude": claude_table(), "codex": vendor_table()}))
    assert run(rt, "alpha", "claude") == "landed"
    assert run(rt, "broken", "codex") == "rejected"
    assert run(rt, "beta", "codex") == "landed"

    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    env.update(SWARM_CONFIG=str(write_toml(project, redis_url)), PYTHONPATH=str(REPO_ROOT))
    out = tmp_path / "report"
    done = subprocess.run([sys.executable, "-m", "swarm", "report", "--out", str(out)], cwd=project.root, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    page = out / "index.html"
    assert str(page.resolve()) in done.stdout
    html = page.read_text()

    # Self-contained: no script, no external file, nothing fetched.
    assert "<script" not in html and not re.search(r"\b(src|href)=", html)
    assert html.count("<svg") == 5
    main = project.main_log()[0]
    passing = (rt.baselines.get(main) or Counts()).passed
    assert passing == 3
    assert f"<b>? → {passing}</b>main passing" in html or f"→ {passing}</b>main passing" in html
    assert "<title>total</title>" in html and "<title>checks</title>" in html, "passing count in total and per area"
    assert "<title>claude</title>" in html and "<title>codex</title>" in html, "landings per vendor"
    assert "<b>2</b>tasks landed" in html and "<b>0</b>coordination commits" in html
    assert "rejected: oracle_red: 1" in html and "landed: 2" in html
    assert re.search(r"agent running: [\d.]+ s", html) and re.search(r"oracle \(baseline, fast, full\): [\d.]+ s", html)
    claude_cost = float(rt.ledger.spend_total("claude")["cost_usd"])
    assert claude_cost > 0 and f"claude: ${claude_cost:,.2f}" in html

    # As a browser shows it: drawn, with every chart in the DOM.
    dom = browser.dom(page.resolve().as_uri())
    assert dom.count("<svg") == 5 and "swarm run report" in dom
    shot = browser.screenshot(page.resolve().as_uri(), tmp_path / "report.png", size="900,2400")
    assert browser.distinct_rows(shot) > 100, "the report renders as a mostly blank page"
