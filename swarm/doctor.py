"""`swarm doctor`: what a deployment needs, checked one by one: settings, Redis, origin, the oracle, each vendor."""

from __future__ import annotations

import logging
import secrets
import shutil

import redis
from rich.console import Console
from rich.markup import escape

from swarm import buildcache, repo
from swarm.errors import SwarmError
from swarm.redact import redact
from swarm.runtime import usable_workdir
from swarm.settings import REPO_SETTINGS_FILE, RepoSettings, Settings, VendorSettings, parse_repo_settings
from swarm.workspace import reach

log = logging.getLogger(__name__)

Check = tuple[str, bool | None, str]
"""(what was checked, whether it is fine (None: a warning, not a failure), what was found or what to fix)."""


def run(settings: Settings, console: Console) -> int:
    """Print every check (passwords in URLs redacted); returns the number of failed ones."""
    return show(checks(settings), console)


def show(results: list[Check], console: Console) -> int:
    """Print checks as ok, warn (ok is None: worth knowing, not a failure) or FAIL; returns the failed ones."""
    for name, ok, detail in results:
        mark = "[green]ok[/]  " if ok else "[yellow]warn[/]" if ok is None else "[red]FAIL[/]"
        console.print(f"{mark} {escape(name)}: {escape(redact(detail))}", highlight=False)
    return sum(1 for _, ok, _ in results if ok is False)


def checks(settings: Settings) -> list[Check]:
    out: list[Check] = [
        ("settings", True, f"{len(settings.vendors)} vendor(s): {', '.join(settings.vendors) or 'none'}")
    ]
    if not settings.vendors:
        out.append(("vendors", False, "no [vendors.<name>] table in the settings; workers would have nothing to run"))
    return out + redis_checks(settings) + origin_checks(settings) + vendor_checks(settings, list(settings.vendors))


def redis_checks(settings: Settings) -> list[Check]:
    if not settings.redis_url:  # the embedded path: `swarm up`, `swarm demo` and the Procfile's `swarm redis`
        return [("redis", None, "redis_url is not set: `swarm up` and `swarm demo` start an embedded Redis; workers "
                                "started by hand (celery, honcho, compose) need SWARM_REDIS_URL")]  # fmt: skip
    url = redact(settings.redis_url)
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=3, socket_timeout=3)
    try:
        client.ping()
        policy = client.config_get("maxmemory-policy").get("maxmemory-policy", "?")
    except redis.RedisError as exc:
        return [("redis", False, f"{url}: {exc}")]
    advice = "" if policy == "noeviction" else " (must be noeviction, or leases may be evicted)"
    return [("redis", policy == "noeviction", f"{url} answers; maxmemory-policy {policy}{advice}")]


def origin_checks(settings: Settings) -> list[Check]:
    if not settings.origin:
        return [("origin", False, "origin is not set (SWARM_ORIGIN): the repository the swarm lands on")]
    try:
        path = usable_workdir(settings) / "mirror.git"
        mirror = repo.Mirror(settings.origin, path, settings.branch, settings.git_timeout).ensure()
        main = mirror.fetch()
        out: list[Check] = [("origin", True, f"{settings.origin} reachable; {settings.branch} at {main[:12]}")]
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
    return [*out, oracle_on_main(settings, mirror, main, repo_settings)]


def oracle_on_main(settings: Settings, mirror: repo.Mirror, main: str, repo_settings: RepoSettings) -> Check:
    """Judge main once, as workers will (the same sandboxed judge): green, and the counts its runner reads."""
    from swarm.judge import Judge

    oracle = repo_settings.oracle
    folder = usable_workdir(settings) / "doctor"
    judge = Judge(mirror, folder / "judge", seed=secrets.token_hex(8), sandboxed=not settings.unsafe_no_sandbox)
    try:
        result = judge.run(repo_settings, "full", main, main, folder / "oracle.log", agent_id="doctor",
                           timeout=min(oracle.timeout, settings.oracle_timeout))  # fmt: skip
    except (SwarmError, OSError) as exc:
        return ("oracle on main", False, f"could not run it: {exc}")
    if not result.ok:
        return ("oracle on main", False, f"{result.reason} (runner {oracle.runner}; log {result.log_path})")
    areas = result.summary.get("areas") or {}
    return ("oracle on main", True, f"green: passed {result.passed}, failed {result.failed}, skipped "
                                    f"{result.skipped}, {len(areas)} area(s) (runner {oracle.runner})")  # fmt: skip


def vendor_checks(settings: Settings, names: list[str]) -> list[Check]:
    """Each named vendor's agent: CLI adapters check binary, version (a warning outside the versions the adapter
    was checked against), flags and login themselves."""
    from swarm.agents import registry

    out: list[Check] = []
    for name in names:
        vendor = settings.vendors[name]
        agent = registry.make(name, vendor.adapter, vendor.options())
        own_checks = getattr(agent, "check", None)
        if callable(own_checks):
            out.extend(own_checks())
        else:
            exe = agent.executable()
            path = shutil.which(exe)
            found = f"{exe} -> {path}" if path else f"{exe!r} not found on PATH"
            out.append((f"vendor {name}", path is not None, found))
        out.append(reach_check(name, vendor))
    return out


def reach_check(name: str, vendor: VendorSettings) -> Check:
    """What the vendor's agent can reach from its sandbox; the host's network is a warning."""
    network, allow = reach(vendor)
    what = f"vendor {name} network"
    if network == "host":
        return (what, None, 'host: the agent reaches every service of this host (Redis, origin): unsafe; use "proxy"')
    if network == "none":
        return (what, True, "none: a loopback of its own only")
    return (what, True, f"proxy: only {', '.join(allow) or 'nothing'} (vendors.{name}.allow_hosts)")
