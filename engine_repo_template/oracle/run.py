#!/usr/bin/env python3
"""The SQL oracle: every case in tests/sql/<area>/<case>.sql runs through sqlite3 (Python's module) and through
the `engine` binary; a case passes when the two outputs are the same after normalisation.

Normalisation: trailing whitespace of each line is dropped, and any line starting with `Error:` becomes `Error`,
so an error must happen at the same place but its wording is free. Row order always counts: every case is written
so that sqlite3's order is fully determined (ORDER BY on a unique key, or a single row); tests check this with
PRAGMA reverse_unordered_selects. A timeout or a crash (signal, Rust panic) fails the case whatever it printed.

Tiers: the full tier runs every case; --fast runs the smoke set (the first case of every area) plus a
deterministic ~10% sample seeded by AGENT_ID (or --seed): the same seed always picks the same cases.

Variants: with a secret seed (SWARM_JUDGE_SEED, set by the swarm's judge), every case that passes also runs once
more as a variant the engine has never seen (oracle/variants.py: tables renamed, small integers in INSERTs shifted,
every session opened by a numbered SELECT), with sqlite3 computing its expected output; the case passes only when
both do. An engine that recognises the visible cases and replays their answers fails the variants. Under the
swarm, each engine call runs in its jail, where it can start no other program and load no other SQL engine:
through the jail server the judge offers in SWARM_JAIL_SERVER (one jail per worker thread, a fresh folder per
case), else with a jail per call (SWARM_JAIL).

Exit status: 0 when the oracle ran to completion, whatever the number of failing cases (they are progress not yet
made, and are counted); with --strict, 1 when any case failed; 2 when the oracle itself could not run.
Standard library only (Python 3.11+).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import difflib
import hashlib
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# No __pycache__ inside the repository: it would show up as an untracked change in every worktree.
sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))
import reference  # noqa: E402
import variants  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "tests" / "sql"
FAST_FRACTION = 0.10
PANIC_EXIT = 101
ENGINE_ENV = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
"""The engine's environment: not the swarm's variables, among them the secret seed of the unseen variants."""


@dataclass(frozen=True)
class Case:
    area: str
    name: str
    path: Path

    @property
    def id(self) -> str:
        return f"{self.area}/{self.name}"


@dataclass
class Outcome:
    case: Case
    status: str  # "passed" | "failed" | "skipped"
    reason: str = ""
    diff: str = ""


def discover(root: Path) -> list[Case]:
    return sorted(
        (Case(p.parent.name, p.stem, p) for p in root.glob("*/*.sql")),
        key=lambda c: c.id,
    )


def smoke_set(cases: list[Case]) -> list[Case]:
    """The first case of every area: cheap, and it catches a broken build or output format at once."""
    first: dict[str, Case] = {}
    for c in cases:
        first.setdefault(c.area, c)
    return list(first.values())


def fast_sample(cases: list[Case], seed: str) -> list[Case]:
    """Smoke set plus ceil(10%) of all cases ranked by sha256(seed, id): stable per seed, different across seeds."""

    def rank(c: Case) -> str:
        return hashlib.sha256(f"{seed}\0{c.id}".encode()).hexdigest()

    k = math.ceil(len(cases) * FAST_FRACTION)
    chosen = {c.id for c in sorted(cases, key=rank)[:k]} | {c.id for c in smoke_set(cases)}
    return [c for c in cases if c.id in chosen]


def normalise(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()  # the final newline, not an empty row
    return ["Error" if line.startswith("Error:") else line for line in lines]


def find_engine(explicit: str | None) -> Path:
    """--engine, else $ENGINE_BIN, else the swarm's built artifact, else <$CARGO_TARGET_DIR or ./target>/debug/engine."""
    artifacts = os.environ.get("SWARM_ARTIFACTS")
    candidate = explicit or os.environ.get("ENGINE_BIN") or (str(Path(artifacts) / "engine") if artifacts else None)
    if candidate:
        path = Path(candidate)
    else:
        target = Path(os.environ.get("CARGO_TARGET_DIR") or "target")
        if not target.is_absolute():
            target = ROOT / target
        path = target / "debug" / "engine"
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise SystemExit(f"oracle: no engine binary at {path} (build with `cargo build --offline` or pass --engine)")
    return path.resolve()


def jail_prefix(workdir: Path) -> list[str]:
    """The swarm's jail around each engine call (SWARM_JAIL, a JSON argv with `{dir}` for the one writable folder):
    there the engine can start no other program and load no other SQL engine. Empty when run by hand."""
    raw = os.environ.get("SWARM_JAIL")
    if not raw:
        return []
    return [arg.replace("{dir}", str(workdir)) for arg in json.loads(raw)]


def jail_server() -> Any:
    """The swarm's jail server (SWARM_JAIL_SERVER: its client module's path), as a pool of jails, one per thread
    at a time; None when the swarm offers none (or the oracle runs by hand)."""
    raw = os.environ.get("SWARM_JAIL_SERVER")
    if not raw:
        return None
    spec = importlib.util.spec_from_file_location("swarm_jailclient", json.loads(raw)["client"])
    if spec is None or spec.loader is None:
        raise SystemExit(f"oracle: SWARM_JAIL_SERVER names no loadable client: {raw[:200]}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.from_env()


@dataclass(frozen=True)
class Ran:
    """How one engine call ended (returncode < 0: killed by that signal)."""

    returncode: int
    stdout: bytes
    stderr: bytes
    timed_out: bool = False


Call = Callable[[list[str], bytes, float], Ran]


@contextlib.contextmanager
def engine_room(work: Path, jails: Any) -> Iterator[tuple[Path, Call]]:
    """A folder of the engine's own (the reference database next to it is out of its reach) and how to run the
    engine there: in a jail of the swarm's jail server, else in a jail per call (SWARM_JAIL), else bare."""
    if jails is not None:
        with jails.session() as session:
            yield session.folder, session.run
        return
    folder = work / "engine"
    folder.mkdir()
    yield folder, lambda argv, data, timeout: run_here(argv, data, folder, timeout)


def run_here(argv: list[str], data: bytes, workdir: Path, timeout: float) -> Ran:
    try:
        proc = subprocess.run([*jail_prefix(workdir), *argv], input=data, capture_output=True, timeout=timeout,
                              cwd=workdir, env=ENGINE_ENV)  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        return Ran(-9, exc.stdout or b"", exc.stderr or b"", timed_out=True)
    return Ran(proc.returncode, proc.stdout, proc.stderr)


def run_engine(call: Call, engine: Path, sql: str, db: Path | None, timeout: float) -> tuple[str, str | None]:
    """Engine stdout, and a failure reason when it timed out or crashed (None when it exited normally)."""
    try:
        ran = call([str(engine), *([str(db)] if db else [])], sql.encode(), timeout)
    except RuntimeError as exc:  # the jail server failed (jailclient.JailError): the case cannot pass
        return "", f"jail: {exc}"
    out = ran.stdout.decode("utf-8", "replace")
    if ran.timed_out:
        return out, f"timeout after {timeout:g}s"
    if ran.returncode < 0:
        return out, f"engine killed by signal {-ran.returncode}"
    if ran.returncode == PANIC_EXIT:
        last = ran.stderr.decode("utf-8", "replace").strip().splitlines()
        return out, "engine panicked" + (f": {last[0][:200]}" if last else "")
    return out, None


def run_case(case: Case, engine: Path, timeout: float, variant_seed: str = "", jails: Any = None) -> Outcome:
    """A case passes when the engine matches sqlite3 on it and, with a seed, on its variant as well."""
    sql = case.path.read_text(encoding="utf-8")
    outcome = run_sql(case, sql, engine, timeout, jails)
    if outcome.status != "passed" or not variant_seed:
        return outcome
    varied = variants.vary(sql, f"{variant_seed}\0{case.id}")
    if varied == sql:
        return outcome
    outcome = run_sql(case, varied, engine, timeout, jails)
    if outcome.status == "failed":
        outcome.reason = "variant: " + outcome.reason
    return outcome


def run_sql(case: Case, sql: str, engine: Path, timeout: float, jails: Any = None) -> Outcome:
    parts = reference.sessions(sql)
    with tempfile.TemporaryDirectory(prefix="oracle-") as tmp, engine_room(Path(tmp), jails) as (engine_dir, call):
        work = Path(tmp)
        multi = len(parts) > 1
        try:
            want = reference.expected_output(sql, work / "sqlite.db" if multi else None)
        except reference.BrokenCase as exc:
            return Outcome(case, "skipped", f"broken case: {exc}")
        got = ""
        deadline = time.monotonic() + timeout
        for part in parts:
            # Each session is a fresh engine process on the same file: that is what persistence means.
            db = engine_dir / "engine.db" if multi else None
            out, problem = run_engine(call, engine, part, db, max(0.1, deadline - time.monotonic()))
            got += out
            if problem:
                return Outcome(case, "failed", problem, _diff(want, got))
    w, g = normalise(want), normalise(got)
    if w == g:
        return Outcome(case, "passed")
    return Outcome(case, "failed", _first_difference(w, g), _diff(want, got))


def _first_difference(want: list[str], got: list[str]) -> str:
    for i, (a, b) in enumerate(zip(want, got, strict=False)):
        if a != b:
            return f"line {i + 1}: expected {a[:60]!r}, got {b[:60]!r}"
    if len(want) > len(got):
        return f"line {len(got) + 1}: expected {want[len(got)][:60]!r}, got end of output"
    return f"line {len(want) + 1}: expected end of output, got {got[len(want)][:60]!r}"


def _diff(want: str, got: str) -> str:
    lines = difflib.unified_diff(normalise(want), normalise(got), "sqlite3", "engine", lineterm="", n=2)
    return "\n".join(list(lines)[:40])


def summarise(outcomes: list[Outcome], all_cases: list[Case]) -> dict[str, object]:
    areas: dict[str, dict[str, int]] = {}
    for c in all_cases:
        areas.setdefault(c.area, {"passed": 0, "failed": 0, "skipped": 0})
    ran = {o.case.id for o in outcomes}
    for c in all_cases:
        if c.id not in ran:
            areas[c.area]["skipped"] += 1
    for o in outcomes:
        areas[o.case.area][o.status] += 1
    total = {k: sum(a[k] for a in areas.values()) for k in ("passed", "failed", "skipped")}
    return {**total, "total": len(all_cases), "areas": dict(sorted(areas.items()))}


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Compare the engine with sqlite3 on tests/sql/<area>/<case>.sql.")
    p.add_argument("cases", nargs="*", help="run only these case ids (area/name) or areas")
    p.add_argument("--fast", action="store_true", help="smoke set + ~10%% sample seeded by AGENT_ID")
    p.add_argument("--seed", help="sample seed for --fast (default: $AGENT_ID)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object on the last line")
    p.add_argument("--strict", action="store_true", help="exit 1 when any case fails")
    p.add_argument("--list", action="store_true", help="print the ids of the selected cases and exit")
    p.add_argument("--engine", help="engine binary (default: $ENGINE_BIN, else $CARGO_TARGET_DIR/debug/engine)")
    p.add_argument("--cases-dir", type=Path, default=CASES, help=argparse.SUPPRESS)
    p.add_argument(
        "--timeout",
        type=float,
        default=float(os.environ.get("ORACLE_TIMEOUT", "5")),
        help="seconds per case (default: $ORACLE_TIMEOUT or 5)",
    )
    p.add_argument(
        "--variant-seed",
        default=os.environ.get("SWARM_JUDGE_SEED", ""),
        help="also run a variant of every passing case made from this secret seed (default: $SWARM_JUDGE_SEED)",
    )
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="cases run in parallel")
    p.add_argument("-v", "--verbose", action="store_true", help="show a diff for every failing case")
    p.add_argument("--cargo-test", default="not run", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def select(args: argparse.Namespace, cases: list[Case]) -> tuple[list[Case], str]:
    if args.cases:
        wanted = set(args.cases)
        cases = [c for c in cases if c.id in wanted or c.area in wanted]
    if args.fast:
        seed = args.seed if args.seed is not None else os.environ.get("AGENT_ID", "")
        return fast_sample(cases, seed), seed
    return cases, ""


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    all_cases = discover(args.cases_dir)
    if not all_cases:
        raise SystemExit(f"oracle: no cases under {args.cases_dir}")
    chosen, seed = select(args, all_cases)
    if args.list:
        print("\n".join(c.id for c in chosen))
        return 0
    engine = find_engine(args.engine)
    started = time.monotonic()
    jails = jail_server()
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            outcomes = list(pool.map(lambda c: run_case(c, engine, args.timeout, args.variant_seed, jails), chosen))
    finally:
        if jails is not None:
            jails.close()
    for o in outcomes:
        if o.status != "passed":
            print(f"{o.status.upper()} {o.case.id}: {o.reason}")
            if args.verbose and o.diff:
                print(o.diff)
    summary = summarise(outcomes, all_cases)
    areas = summary["areas"]
    assert isinstance(areas, dict)
    print(f"{'area':<18} passed failed skipped")
    for name, a in areas.items():
        print(f"{name:<18} {a['passed']:>6} {a['failed']:>6} {a['skipped']:>7}")
    print(
        f"oracle: {summary['passed']} passed, {summary['failed']} failed, {summary['skipped']} skipped "
        f"of {summary['total']} cases ({'fast, seed ' + repr(seed) if args.fast else 'full'})"
    )
    if args.json:
        summary.update(
            tier="fast" if args.fast else "full",
            seed=seed,
            variants=bool(args.variant_seed),
            cargo_test=args.cargo_test,
            elapsed_s=round(time.monotonic() - started, 2),
        )
        print(json.dumps(summary, separators=(",", ":")))
    return 1 if args.strict and summary["failed"] else 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
            sys.exit(2)
        raise
    except Exception:
        import traceback

        traceback.print_exc()
        print("oracle: internal error (see the traceback above)", file=sys.stderr)
        sys.exit(2)
