"""The `swarm` commands that watch and steer a running swarm; cli.py registers them on its group."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from swarm import controls
from swarm.errors import SwarmError
from swarm.runtime import Runtime, connect
from swarm.settings import load_settings

log = logging.getLogger(__name__)


def _runtime(ctx: click.Context) -> Runtime:
    config: Path | None = (ctx.obj or {}).get("config")
    return connect(load_settings(config))


@click.command()
@click.option("--port", type=int, default=None, help="Port of /metrics (default: 9808).")
@click.option("--address", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.pass_context
def exporter(ctx: click.Context, port: int | None, address: str) -> None:
    """Serve the swarm's metrics (swarm_*) for Prometheus on /metrics."""
    from swarm import exporter as exporter_mod

    port = exporter_mod.DEFAULT_PORT if port is None else port
    rt = _runtime(ctx)
    click.echo(f"swarm exporter: http://{address}:{port}/metrics")
    try:
        exporter_mod.serve(rt, address, port)
    except KeyboardInterrupt:
        pass


@click.command()
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("swarm-report"),
              show_default=True, help="Folder of the report (index.html is written there).")  # fmt: skip
@click.pass_context
def report(ctx: click.Context, out: Path) -> None:
    """Write a self-contained HTML report of the run (plots as inline SVG), from git and Redis."""
    from swarm import report as report_mod

    page = report_mod.write(_runtime(ctx), out)
    click.echo(f"report: {page.resolve()}")


@click.command()
@click.argument("task_id")
@click.option("--title", required=True, help="The task's title.")
@click.option("--body", default="", help="What to do (the task file's text; default: the title).")
@click.option("--depends-on", default="", help="Comma-separated ids of tasks that must land first.")
@click.option("--vendor", default=None, help="Only this vendor may run it.")
@click.option("--priority", type=int, default=0, show_default=True, help="Higher runs first.")
@click.pass_context
def add(ctx: click.Context, task_id: str, title: str, body: str, depends_on: str, vendor: str | None,
        priority: int) -> None:  # fmt: skip
    """Add a task: its file lands on main through the swarm (one commit, compare-and-swap push)."""
    deps = tuple(d.strip() for d in depends_on.split(",") if d.strip())
    new = controls.NewTask(task_id, title, body, deps, vendor, priority)
    commit = controls.add(_runtime(ctx), new)
    click.echo(f"added {task_id} in {commit[:12]}; dispatch queues it when it is ready")


@click.command()
@click.argument("task_id")
@click.option("--wait", type=float, default=60.0, show_default=True, help="Seconds to wait for the attempt to stop.")
@click.pass_context
def cancel(ctx: click.Context, task_id: str, wait: float) -> None:
    """Stop the task's running attempt (not counted against its budget) and hold it until `swarm retry`."""
    done = controls.cancel(_runtime(ctx), task_id, wait)
    if not done["was_running"]:
        click.echo(f"{task_id}: no attempt was running; held until `swarm retry {task_id}`")
    elif done["stopped"]:
        click.echo(f"{task_id}: attempt stopped; held until `swarm retry {task_id}`")
    else:
        raise SwarmError(f"{task_id}: lease taken, but the attempt had not ended after {wait:.0f}s; see swarm status")


@click.command()
@click.argument("vendor", required=False)
@click.pass_context
def pause(ctx: click.Context, vendor: str | None) -> None:
    """Start no new attempt on VENDOR (all vendors if omitted); running attempts finish."""
    click.echo("paused: " + ", ".join(controls.pause(_runtime(ctx), vendor)))


@click.command()
@click.argument("vendor", required=False)
@click.pass_context
def resume(ctx: click.Context, vendor: str | None) -> None:
    """Let VENDOR (all vendors if omitted) start attempts again."""
    click.echo("resumed: " + ", ".join(controls.resume(_runtime(ctx), vendor)))


@click.command()
@click.argument("task_id")
@click.option("-f", "--follow", is_flag=True, help="Keep printing while the attempt runs.")
@click.option("--file", "name", default="agent.log", show_default=True, help="Which log of the attempt's folder.")
@click.pass_context
def logs(ctx: click.Context, task_id: str, follow: bool, name: str) -> None:
    """Print the log of the task's running (or last) attempt."""
    rt = _runtime(ctx)
    folder = controls.log_dir(rt, task_id)
    path = folder / name
    if not follow and not path.exists():
        files = ", ".join(sorted(p.name for p in folder.glob("*"))) or "none"
        raise SwarmError(f"{path}: no such log (files there: {files})")
    click.echo(f"==> {path}", err=True)
    alive = (lambda: controls.running(rt, task_id, folder)) if follow else (lambda: False)
    try:
        for chunk in controls.follow(path, alive):
            click.echo(chunk, nl=False)
    except KeyboardInterrupt:
        pass


@click.command()
@click.option("-f", "--follow", is_flag=True, help="Keep printing new events until Ctrl-C.")
@click.option("-n", "count", type=int, default=20, show_default=True, help="How many recent events first.")
@click.pass_context
def events(ctx: click.Context, follow: bool, count: int) -> None:
    """Print the swarm's recent events (task states), oldest first."""
    rt = _runtime(ctx)
    after = rt.events.last_id()
    recent = rt.events.recent(count) if count > 0 else []
    for entry in reversed(recent):
        click.echo(controls.format_event(entry))
    if not follow:
        return
    try:
        while True:
            for eid, entry in rt.events.since(after, 100, block_ms=250):  # within the client's socket timeout
                after = eid
                click.echo(controls.format_event(entry))
    except KeyboardInterrupt:
        pass


COMMANDS = [exporter, report, add, cancel, pause, resume, logs, events]


def register(group: click.Group) -> None:
    """Add these commands, and --version, to the `swarm` group."""
    for command in COMMANDS:
        group.add_command(command)
    click.version_option(package_name="swarm", prog_name="swarm")(group)
