"""The `swarm` command: parses arguments and calls the module that does the work (doctor, views, session...)."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import redis
from rich.console import Console
from rich.markup import escape

from swarm import dispatch as dispatch_mod
from swarm import ledger, reaper, repo, state, templates, views, watch
from swarm.commands import register as register_commands
from swarm.controls import require_task
from swarm.errors import SwarmError
from swarm.redact import redact, redact_logging
from swarm.runtime import Runtime, connect
from swarm.settings import REPO_SETTINGS_FILE, Settings, config_file, load_settings, starter_config, use_config

log = logging.getLogger(__name__)
console = Console(soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_TEMPLATE = templates.ENGINE


def _settings(ctx: click.Context) -> Settings:
    config: Path | None = ctx.obj.get("config")
    return load_settings(config)


def _runtime(ctx: click.Context) -> Runtime:
    return connect(_settings(ctx))


@click.group()
@click.option("--config", type=click.Path(path_type=Path), help="Deployment config file (default: ./swarm.toml).")
@click.option("-v", "--verbose", is_flag=True, help="Log what the swarm does.")
@click.pass_context
def cli(ctx: click.Context, config: Path | None, verbose: bool) -> None:
    """Run a swarm of coding agents on one git repository, landing only green commits on main."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    redact_logging()
    ctx.ensure_object(dict)
    ctx.obj["config"] = config
    use_config(config)  # Celery's config (swarm.celeryconfig) is read through the same settings


def _fail(message: str) -> None:
    """An error is one unwrapped line (or block) on stderr, and exit code 2."""
    click.echo(f"error: {redact(message)}", err=True)
    sys.exit(2)


def _enqueue() -> Callable[[str, str], None]:
    """Celery's sender, with its config loaded now: a bad setting must stop a command before it changes anything."""
    from swarm.celery import app
    from swarm.tasks import enqueue

    app.loader.import_default_modules()
    _ = app.conf.broker_url
    return enqueue


@cli.command()
@click.argument("directory", type=click.Path(path_type=Path))
@click.option(
    "--template",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    default=None,
    help="Folder to start the project from (default: engine_repo_template).",
)
@click.option(
    "--adopt",
    "source",
    default=None,
    metavar="PATH_OR_URL",
    help="Make this existing repository (with its origin) a swarm project instead.",
)
@click.option("--oracle", "command", default=None, help="With --adopt: the oracle command (default: detected).")
@click.option("--runner", default=None, help="With --adopt: how its output is read (cargo, pytest, go, ...).")
def init(directory: Path, template: Path | None, source: str | None, command: str | None,
         runner: str | None) -> None:  # fmt: skip
    """Make a new project in DIRECTORY: a bare origin, a working clone, and a swarm.toml pointing at them."""
    directory = directory.resolve()
    if source is not None:
        from swarm import adopt

        adopted = adopt.adopt(source, directory, runner, command)
        origin, branch = adopted.origin, adopted.branch
        console.print(escape(adopt.describe(adopted)), highlight=False)
    else:
        origin, branch, clone = str(directory / "origin.git"), "main", directory / "work"
        head = repo.init_project(template or DEFAULT_TEMPLATE, Path(origin), clone)
        console.print(f"[green]created[/] {origin} (main at {head[:12]}) and its clone {clone}")
    config = directory / "swarm.toml"
    if not config.exists():
        config.write_text(starter_config(origin, directory / ".swarm", branch))
    from swarm import deploy

    for path in deploy.write(directory):
        console.print(f"wrote {path} (`honcho start` in {directory} runs Redis, workers, beat and Flower)")
    console.print(f"settings: {config}  (set redis_url and vendors there, then `swarm --config {config} doctor`)")


@cli.command("dispatch")
@click.pass_context
def dispatch_cmd(ctx: click.Context) -> None:
    """Queue every ready task once (deps landed, not landed, leased, queued or failed)."""
    enqueue = _enqueue()
    rt = _runtime(ctx)
    report = dispatch_mod.dispatch(rt, enqueue)
    if report.skipped_busy:
        console.print("another dispatch is running; nothing done")
        return
    for line in report.invalid:
        console.print(f"[red]invalid[/] {escape(line)}", highlight=False)
    for task_id, vendor in report.enqueued:
        console.print(f"queued {task_id} -> {vendor}")
    if report.waiting:
        console.print(f"{len(report.waiting)} ready task(s) wait for a free vendor slot: {', '.join(report.waiting)}")
    if not report.enqueued and not report.waiting:
        console.print("nothing ready to queue")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--watch", "live", is_flag=True, help="Redraw a live view (stage, elapsed, vendor) until Ctrl-C.")
@click.option("--state", "states", default="", help="Only tasks in these states (comma-separated).")
@click.option("--vendor", default=None, help="Only tasks of this vendor.")
@click.pass_context
def status(ctx: click.Context, as_json: bool, live: bool, states: str, vendor: str | None) -> None:
    """Every task with its state, leases with time left, last landings, and main's oracle counts."""
    rt = _runtime(ctx)
    wanted = watch.parse_states(states)
    if live:
        try:
            watch.run(rt, console, wanted, vendor)
        except KeyboardInterrupt:
            pass
        return
    report = watch.filtered(rt, state.report(rt), wanted, vendor)
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
        return
    views.print_status(console, report)


@cli.command()
@click.argument("task_id")
@click.pass_context
def retry(ctx: click.Context, task_id: str) -> None:
    """Give a failed task a fresh attempt budget and queue it again."""
    enqueue = _enqueue()
    rt = _runtime(ctx)
    had_failed = dispatch_mod.retry(rt, task_id)
    console.print(f"{task_id}: " + ("failure cleared" if had_failed else "was not marked failed; attempts reset"))
    queued = dict(dispatch_mod.dispatch(rt, enqueue).enqueued)
    if task_id in queued:
        console.print(f"queued {task_id} -> {queued[task_id]}")


@cli.command("coalesce")
@click.pass_context
def coalesce_cmd(ctx: click.Context) -> None:
    """Queue a clean-up pass now: an agent follows the repository's coalesce prompt (merge duplicated code and docs)."""
    from swarm import coalesce

    enqueue = _enqueue()
    rt = _runtime(ctx)
    snap = state.take(rt)
    if snap.repo is None or not snap.repo.coalesce_prompt:
        raise SwarmError(f"{REPO_SETTINGS_FILE} on {rt.settings.branch} names no coalesce_prompt")
    task_id = coalesce.next_id(snap.landed)
    if task_id in snap.leases or task_id in snap.queued:
        console.print(f"{task_id} is already {'running' if task_id in snap.leases else 'queued'}")
        return
    dispatch_mod.retry(rt, task_id)  # a pass of this number that failed gets a fresh attempt budget
    free = dispatch_mod.free_slots(rt, snap)
    vendor = max(sorted(free), key=lambda v: free[v])  # asked for by hand: it goes even if every slot is busy
    rt.marks.force(task_id, vendor, 600)
    enqueue(task_id, vendor)
    console.print(f"queued {task_id} -> {vendor}")


@cli.command()
@click.argument("task_id")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def history(ctx: click.Context, task_id: str, as_json: bool) -> None:
    """Every attempt of a task: when, where, how it ended and why, and where its logs are."""
    rt = _runtime(ctx)
    ledger.ensure_loaded(rt)  # after a Redis wipe, the history comes back from origin first
    records = [r.to_dict() for r in rt.book.history(task_id)]
    if not records:
        require_task(rt, task_id)  # an unknown task id is an error, not an empty history
    if as_json:
        click.echo(json.dumps(records, indent=2, default=str))
        return
    views.print_history(console, task_id, records)


@cli.command()
@click.argument("vendor")
@click.pass_context
def unblock(ctx: click.Context, vendor: str) -> None:
    """Clear a vendor's cooldown or auth error once you fixed its cause (see `swarm doctor`)."""
    rt = _runtime(ctx)
    if vendor not in rt.settings.vendors:
        raise SwarmError(f"no vendor {vendor!r} (configured: {', '.join(rt.settings.vendors) or 'none'})")
    rt.ledger.clear(vendor)
    console.print(f"{vendor}: cooldown and auth error cleared")


@cli.command()
@click.pass_context
def reap(ctx: click.Context) -> None:
    """Finish attempts whose lease expired (what beat runs every lease_ttl/3)."""
    rt = _runtime(ctx)
    lost = reaper.reap(rt)
    console.print(f"lost attempts finished: {', '.join(lost)}" if lost else "no lost attempts")


@cli.command()
@click.pass_context
def doctor(ctx: click.Context) -> None:
    """Check Redis, origin (reachable and pushable), each vendor's command, and the oracle command."""
    from swarm import doctor as doctor_mod

    sys.exit(1 if doctor_mod.run(_settings(ctx), console) else 0)


@cli.command()
@click.option(
    "--workers", default="", help="Slots per vendor, e.g. claude=2,codex=1 (default: each vendor's concurrency)."
)
@click.option("--no-flower", is_flag=True, help="Do not start Flower.")
@click.pass_context
def up(ctx: click.Context, workers: str, no_flower: bool) -> None:
    """Run the swarm of swarm.toml on this machine: Redis (embedded unless redis_url is set), workers, beat, Flower."""
    from swarm import launch, session

    config = ctx.obj.get("config") or config_file()
    settings = _settings(ctx)
    slots = launch.worker_slots(workers, settings)
    launch.refuse_missing_vendors(settings, slots)
    with session.started(config, slots, flower=not no_flower) as s:
        if s.flower_url and s.flower_auth:
            console.print(f"Flower: {s.flower_url}  user {s.flower_auth[0]}  password {s.flower_auth[1]}")
        console.print(f"process logs: {s.supervisor.logs}; Ctrl-C stops everything")
        session.watch(s, lambda report: False, timeout=float("inf"))


@cli.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    default=Path("swarm-demo"),
    show_default=True,
    help="Folder of the demo project (a previous demo there is replaced).",
)
@click.option(
    "--template",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    default=None,
    help="Template of the project (default: engine_repo_template).",
)
@click.option("--keep", is_flag=True, help="Leave the swarm running after the summary, for browsing Flower.")
@click.option("--timeout", type=float, default=1200, show_default=True, help="Give up after this many seconds.")
@click.option(
    "--solutions",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    default=None,
    help="Folder of recorded solutions (<task>.patch, <task>.<attempt>.patch); default: shipped ones.",
)
@click.option(
    "--example",
    type=click.Choice(["engine", "python"]),
    default="engine",
    show_default=True,
    help="Which shipped project to build: the Rust engine, or a small Python library tested by pytest.",
)
def demo(directory: Path, template: Path | None, keep: bool, timeout: float, solutions: Path | None,
         example: str) -> None:  # fmt: skip
    """One command, no API key: replay agents on three vendor queues build a fresh engine project."""
    from swarm import demo as demo_mod

    shipped = templates.examples()[example]
    summary = demo_mod.run(directory, template or shipped.template, keep, timeout, solutions or shipped.solutions)
    sys.exit(0 if summary.landed and not summary.failed else 1)  # fmt: skip


@cli.command()
@click.option("--oracle", "check_oracle", is_flag=True, help="Re-run the full oracle on every commit of main.")
@click.option("--last", type=int, default=None, help="With --oracle: only the newest N commits.")
@click.pass_context
def audit(ctx: click.Context, check_oracle: bool, last: int | None) -> None:
    """Check main's history against the promises; exit 1 with the commit and reason when one is broken."""
    from swarm import audit as audit_mod

    settings = _settings(ctx)
    settings.require("origin")
    path = settings.workdir.resolve() / "mirror.git"
    mirror = repo.Mirror(settings.origin or "", path, settings.branch, settings.git_timeout).ensure()
    report = audit_mod.audit(mirror, check_oracle, last, settings.workdir.resolve(), not settings.unsafe_no_sandbox)
    for problem in report.problems:
        console.print(f"[red]BROKEN[/] {escape(str(problem))}", highlight=False)
    console.print(f"{report.commits} commits on {settings.branch}, {report.landed} tasks landed, "
                  f"{report.oracle_runs} oracle runs: " + ("all promises kept" if report.ok else
                  f"{len(report.problems)} problem(s)"))  # fmt: skip
    sys.exit(0 if report.ok else 1)


@cli.command("redis")
@click.option("--port", type=int, default=6379, show_default=True)
@click.option("--dir", "folder", type=click.Path(path_type=Path), default=Path(".swarm/redis"), show_default=True)
def redis_cmd(port: int, folder: Path) -> None:
    """Run the embedded Redis (noeviction, append-only file) in the foreground, for a Procfile."""
    from swarm.embedded import EmbeddedRedis
    from swarm.session import interrupt_on_signals

    with interrupt_on_signals(), EmbeddedRedis(folder, port=port, persist=True) as server:
        console.print(f"redis at {server.url} (data in {folder}); Ctrl-C stops it")
        try:
            while server.running():
                time.sleep(1)
        except KeyboardInterrupt:
            pass


register_commands(cli)  # exporter, report and the controls (swarm/commands.py)


def main() -> None:
    try:
        cli(standalone_mode=False)
    except SwarmError as exc:
        _fail(str(exc))
    except redis.RedisError as exc:
        _fail(f"cannot reach Redis (setting redis_url / SWARM_REDIS_URL): {exc}")
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
