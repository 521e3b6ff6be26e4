"""The `swarm` command: init, dispatch, status, doctor, retry, reap."""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import redis
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from swarm import attempts, buildcache, keys, repo, state
from swarm import dispatch as dispatch_mod
from swarm.errors import SwarmError
from swarm.runtime import Runtime, connect, usable_workdir
from swarm.settings import REPO_SETTINGS_FILE, Settings, config_file, load_settings, parse_repo_settings, use_config

log = logging.getLogger(__name__)
console = Console(soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])

PACKAGE_ROOT = Path(__file__).resolve().parent
DEFAULT_TEMPLATE = PACKAGE_ROOT.parent / "engine_repo_template"


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
    ctx.ensure_object(dict)
    ctx.obj["config"] = config
    use_config(config)  # Celery's config (swarm.celeryconfig) is read through the same settings


def _fail(message: str) -> None:
    """An error is one unwrapped line (or block) on stderr, and exit code 2."""
    click.echo(f"error: {message}", err=True)
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
        config.write_text(_starter_config(origin, directory / ".swarm", branch))
    console.print(f"settings: {config}  (set redis_url and vendors there, then `swarm --config {config} doctor`)")


def _starter_config(origin: str, workdir: Path, branch: str = "main") -> str:
    return f"""# Deployment settings of this swarm (see README: Configuration). SWARM_* variables override them.
origin = {json.dumps(origin)}
workdir = {json.dumps(str(workdir))}
branch = {json.dumps(branch)}
# redis_url = "redis://127.0.0.1:6379/0"   # required by workers; `swarm demo` starts its own
lease_ttl = 30
agent_timeout = 3600
max_attempts = 3

# One table per vendor; its name is the Celery queue: `celery -A swarm worker -Q <name>`. See README: Configuration.
# [vendors.claude]
# adapter = "claude"          # also: codex, gemini, command (any program), replay (the demo agent)
# concurrency = 2
# model = "sonnet"
# daily_cap_usd = 50
#
# [vendors.codex]
# adapter = "codex"
# concurrency = 2
"""


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
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Every task with its state, leases with time left, last landings, and main's oracle counts."""
    rt = _runtime(ctx)
    report = state.report(rt)
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
        return
    _print_status(report)


def _cost(spend: dict[str, Any] | None) -> str:
    if not spend:
        return ""
    tokens = f"{spend.get('input_tokens', 0)}/{spend.get('output_tokens', 0)} tok"
    return f"${spend.get('cost_usd', 0):.2f} {tokens}"


def _print_status(report: dict[str, Any]) -> None:
    oracle = report["oracle"] or {}
    counts = ", ".join(f"{k} {v}" for k, v in sorted(report["counts"].items()))
    console.print(f"main {report['main'][:12]}  oracle: passed {oracle.get('passed', '?')} failed "
                  f"{oracle.get('failed', '?')}  tasks: {counts}")  # fmt: skip
    if report["repo_error"]:
        console.print(f"[red]{escape(report['repo_error'])}[/]", highlight=False)
    table = Table("task", "state", "pri", "vendor", "attempts", "cost", "detail")
    colors = {
        "landed": "green",
        "failed": "red",
        "invalid": "red",
        "leased": "cyan",
        "queued": "blue",
        "blocked": "dim",
    }
    for row in report["tasks"]:
        detail = row.get("reason") or ""
        if "lease" in row:
            detail = f"{row['lease']['worker']} ({row['lease']['ms_left'] / 1000:.0f}s left)"
        elif "failure" in row:
            detail = f"{row['failure'].get('reason')}: {row['failure'].get('detail')}"
        elif row["state"] == "blocked":
            detail = "waits for " + ", ".join(row["depends_on"])
        color = colors.get(row["state"], "white")
        table.add_row(escape(row["id"]), f"[{color}]{row['state']}[/]", str(row.get("priority", "")),
                      row.get("lease", {}).get("vendor") or row.get("queued_on") or row.get("vendor") or "",
                      str(row.get("attempts", "")), _cost(row.get("spend")), escape(detail[:100]))  # fmt: skip
    console.print(table)
    vendors = Table("vendor", "state", "tokens in/out today", "spent today", "total spent")
    for name, info in report["vendors"].items():
        today, total = info.get("today", {}), info.get("total", {})
        cap = f" of ${info['cap_usd']:.2f}" if info.get("cap_usd") else ""
        state_text = info["state"] if info["state"] == "active" else f"[red]{info['detail']}[/]"
        vendors.add_row(name, state_text, f"{today.get('input_tokens', 0)}/{today.get('output_tokens', 0)}",
                        f"${info.get('spent_today', 0):.2f}{cap}", f"${total.get('cost_usd', 0):.2f}")  # fmt: skip
    console.print(vendors)
    for landing in report["landings"][:5]:
        when = time.strftime("%H:%M:%S", time.localtime(landing["at"]))
        console.print(f"landed {landing['task']} as {landing['commit'][:12]} by {landing['vendor']} at {when} "
                      f"(passed {landing.get('passed')})")  # fmt: skip


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
    rt.redis.set(keys.queued(task_id), vendor, ex=600)
    enqueue(task_id, vendor)
    console.print(f"queued {task_id} -> {vendor}")


@cli.command()
@click.argument("task_id")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def history(ctx: click.Context, task_id: str, as_json: bool) -> None:
    """Every attempt of a task: when, where, how it ended and why, and where its logs are."""
    rt = _runtime(ctx)
    records = attempts.history(rt, task_id)
    if as_json:
        click.echo(json.dumps(records, indent=2, default=str))
        return
    if not records:
        console.print(f"{task_id}: no attempt recorded yet")
        return
    for n, rec in enumerate(records, 1):
        ended = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(rec.get("ended", 0)))
        why = f"{rec.get('reason')}: {rec.get('detail')}" if rec.get("detail") else rec.get("reason") or ""
        console.print(f"#{n} {ended} {rec.get('vendor')} on {rec.get('worker')}: {rec.get('outcome')} {why}",
                      highlight=False)  # fmt: skip
        console.print(f"   logs: {rec.get('log_dir')}", highlight=False)


@cli.command()
@click.argument("vendor")
@click.pass_context
def unblock(ctx: click.Context, vendor: str) -> None:
    """Clear a vendor's cooldown or auth error once you fixed its cause (see `swarm doctor`)."""
    from swarm import quota

    rt = _runtime(ctx)
    if vendor not in rt.settings.vendors:
        raise SwarmError(f"no vendor {vendor!r} (configured: {', '.join(rt.settings.vendors) or 'none'})")
    quota.clear(rt.redis, vendor)
    console.print(f"{vendor}: cooldown and auth error cleared")


@cli.command()
@click.pass_context
def reap(ctx: click.Context) -> None:
    """Finish attempts whose lease expired (what beat runs every lease_ttl/3)."""
    lost = attempts.reap(_runtime(ctx))
    console.print(f"lost attempts finished: {', '.join(lost)}" if lost else "no lost attempts")


@cli.command()
@click.pass_context
def doctor(ctx: click.Context) -> None:
    """Check Redis, origin (reachable and pushable), each vendor's command, and the oracle command."""
    problems = 0

    def check(name: str, ok: bool | None, detail: str) -> None:  # None: a warning, not a failure
        nonlocal problems
        problems += 0 if ok is not False else 1
        mark = "[green]ok[/]  " if ok else "[yellow]warn[/]" if ok is None else "[red]FAIL[/]"
        console.print(f"{mark} {escape(name)}: {escape(detail)}", highlight=False)

    settings = _settings(ctx)
    check("settings", True, f"{len(settings.vendors)} vendor(s): {', '.join(settings.vendors) or 'none'}")
    if not settings.vendors:
        check("vendors", False, "no [vendors.<name>] table in the settings; workers would have nothing to run")
    for problem in _doctor_checks(settings):
        check(*problem)
    sys.exit(1 if problems else 0)


def _doctor_checks(settings: Settings) -> list[tuple[str, bool | None, str]]:
    return [*_redis_checks(settings), *_origin_checks(settings), *_vendor_checks(settings)]


def _redis_checks(settings: Settings) -> list[tuple[str, bool, str]]:
    if not settings.redis_url:
        return [("redis", False, "redis_url is not set (SWARM_REDIS_URL): workers need it; `swarm up` starts one")]
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=3, socket_timeout=3)
    try:
        client.ping()
        policy = client.config_get("maxmemory-policy").get("maxmemory-policy", "?")
    except redis.RedisError as exc:
        return [("redis", False, f"{settings.redis_url}: {exc}")]
    advice = "" if policy == "noeviction" else " (must be noeviction, or leases may be evicted)"
    return [("redis", policy == "noeviction", f"{settings.redis_url} answers; maxmemory-policy {policy}{advice}")]


def _origin_checks(settings: Settings) -> list[tuple[str, bool | None, str]]:
    if not settings.origin:
        return [("origin", False, "origin is not set (SWARM_ORIGIN): the repository the swarm lands on")]
    try:
        path = usable_workdir(settings) / "mirror.git"
        mirror = repo.Mirror(settings.origin, path, settings.branch, settings.git_timeout).ensure()
        main = mirror.fetch()
        out: list[tuple[str, bool | None, str]] = [
            ("origin", True, f"{settings.origin} reachable; {settings.branch} at {main[:12]}")
        ]
        out.append(("origin push", *mirror.probe_push(main)))
        raw = mirror.read(main, REPO_SETTINGS_FILE)
        if raw is None:
            return [*out, ("oracle", False, f"{REPO_SETTINGS_FILE} is missing on {settings.branch}")]
        repo_settings = parse_repo_settings(raw.decode(), f"{settings.branch}:{REPO_SETTINGS_FILE}")
    except SwarmError as exc:
        return [("origin", False, str(exc))]
    for tier in ("fast", "full"):
        command = getattr(repo_settings.oracle, tier)
        program = command.split()[0]
        found = mirror.read(main, program.removeprefix("./")) is not None or shutil.which(program) is not None
        out.append((f"oracle {tier}", found, f"`{command}`" + ("" if found else f": {program} not found")))
    out += [("oracle build folder", None, line) for line in buildcache.shared_folders(repo_settings)]
    return out


def _vendor_checks(settings: Settings) -> list[tuple[str, bool, str]]:
    from swarm.agents import registry

    out: list[tuple[str, bool, str]] = []
    for name, vendor in settings.vendors.items():
        agent = registry.make(name, vendor.adapter, vendor.options())
        own_checks = getattr(agent, "check", None)
        if callable(own_checks):  # CLI adapters check their binary, version, flags and API key themselves
            out.extend(own_checks())
            continue
        exe = agent.executable()
        path = shutil.which(exe)
        out.append((f"vendor {name}", path is not None, f"{exe} -> {path}" if path else f"{exe!r} not found on PATH"))
    return out


@cli.command()
@click.option(
    "--workers", default="", help="Slots per vendor, e.g. claude=2,codex=1 (default: each vendor's concurrency)."
)
@click.option("--no-flower", is_flag=True, help="Do not start Flower.")
@click.pass_context
def up(ctx: click.Context, workers: str, no_flower: bool) -> None:
    """Run the swarm of swarm.toml on this machine: Redis (embedded unless redis_url is set), workers, beat, Flower."""
    from swarm import session

    config = ctx.obj.get("config") or config_file()
    settings = _settings(ctx)
    slots = _parse_workers(workers, settings)
    _refuse_missing_vendors(settings, slots)
    with session.started(config, slots, flower=not no_flower) as s:
        if s.flower_url and s.flower_auth:
            console.print(f"Flower: {s.flower_url}  user {s.flower_auth[0]}  password {s.flower_auth[1]}")
        console.print(f"process logs: {s.supervisor.logs}; Ctrl-C stops everything")
        session.watch(s, lambda report: False, timeout=float("inf"))


def _parse_workers(spec: str, settings: Settings) -> dict[str, int]:
    if not settings.vendors:
        raise SwarmError(
            f"no vendors in {config_file()}: add a [vendors.<name>] table (see README), or try `swarm demo`"
        )
    if not spec:
        return {name: v.concurrency for name, v in settings.vendors.items()}
    slots = {}
    for part in spec.split(","):
        name, _, count = part.partition("=")
        if name not in settings.vendors or not count.isdigit() or int(count) < 1:
            raise SwarmError(f"--workers {part!r}: expected <vendor>=<slots> with a configured vendor "
                             f"({', '.join(settings.vendors)}) and slots >= 1")  # fmt: skip
        slots[name] = int(count)
    return slots


def _refuse_missing_vendors(settings: Settings, slots: dict[str, int]) -> None:
    """`swarm up` starts no worker whose agent could only fail: its CLI or its API key missing."""
    from swarm.agents import registry

    problems = []
    for name in slots:
        vendor = settings.vendors[name]
        agent = registry.make(name, vendor.adapter, vendor.options())
        own_checks = getattr(agent, "check", None)
        if callable(own_checks):
            problems += [f"{check}: {detail}" for check, ok, detail in own_checks() if not ok]
        elif shutil.which(agent.executable()) is None:
            problems.append(f"vendor {name}: {agent.executable()!r} is not on PATH")
    if problems:
        raise SwarmError(
            "cannot start these vendors:\n  " + "\n  ".join(problems) + "\nRun `swarm doctor` for what to fix, "
            "or `swarm demo` to see the swarm work with no agent CLI or API key."
        )


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
def demo(directory: Path, template: Path | None, keep: bool, timeout: float, solutions: Path | None) -> None:
    """One command, no API key: replay agents on three vendor queues build a fresh engine project."""
    from swarm import demo as demo_mod
    from swarm.agents.replay import SHIPPED

    summary = demo_mod.run(directory, template or DEFAULT_TEMPLATE, keep, timeout, solutions or SHIPPED)
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
    report = audit_mod.audit(mirror, check_oracle, last, settings.workdir.resolve())
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
