"""The oracle as a judge the candidate cannot reach.

One run on a candidate commit:
1. its tree is written from the mirror's objects (no attributes, filters or hooks) into the slot's tree folder,
   kept in step with `Mirror.sync`: only what differs from the last run's commit is rewritten, and whatever a run
   changed there (edits, even with their size and times put back; new files; links) is put back first, judged by
   the swarm's own index beside the folder;
2. the BUILD runs the candidate's code (its build scripts, its unit tests) in a sandbox: the tree and a copy of the
   slot's last green build cache writable at fixed paths, fresh HOME and TMPDIR, the system and toolchains
   read-only, libraries of other SQL engines hidden, no network, every process dead when it ends;
3. once the build sandbox is dead, the judge reads the build's output (unit-test counts) and copies out the
   declared artifacts (regular files only);
4. the HARNESS (the judge's scripts and expected results) comes from main's blobs, never the candidate's tree, and
   runs against those artifacts; each call of an artifact goes through SWARM_JAIL (or, for a harness that uses
   it, the jail server of SWARM_JAIL_SERVER: the same jail, started once per harness thread), where it can start
   no other program; its summary line is the verdict.
A build cache only ever comes from a green build of main's exact tree, so no candidate's build sways another's;
it was built in the same tree folder, where every file that differs from that tree was written after it, so
time-stamp-based builds (cargo, make) rebuild exactly what changed.
Without `build` in `.swarm.toml` (the legacy contract), the tier command runs whole in the build sandbox on the
candidate's tree with the harness put back from main: sandboxed, but the candidate's code runs beside the harness.
"""

from __future__ import annotations

import fcntl
import json
import logging
import secrets
import shlex
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swarm import jail, jailserver, proc, repo, runners
from swarm import oracle as oracle_mod
from swarm.environ import child_env, toolchain_env
from swarm.errors import SwarmError
from swarm.oracle import OracleResult, Tier
from swarm.repo import Mirror
from swarm.sandbox import Sandbox, masked_libraries, toolchains
from swarm.settings import OracleSettings, RepoSettings

log = logging.getLogger(__name__)

SRC, CACHE, HOME, TMP = "/sandbox/src", "/sandbox/cache", "/sandbox/home", "/sandbox/tmp"
BUILT_FROM = ".swarm-built-from"
"""Written by the judge into a kept cache (after the build is dead): the commit whose tree it is a build of."""


@dataclass
class Judge:
    """Judges commits for one worker slot; `folder` holds its runs and its green build cache."""

    mirror: Mirror
    folder: Path
    seed: str
    """Secret seed of the harness's unseen variants (SWARM_JUDGE_SEED); the same across the swarm."""
    sandboxed: bool = True
    keep_runs: bool = False
    tools: list[Path] = field(default_factory=list)
    jail_server: bool = True
    """Offer the harness the jail server (SWARM_JAIL_SERVER): one jail per harness thread instead of per call."""
    jail_cache: Path | None = None
    """Where the compiled jail server is kept (default: beside this slot's folder, shared by the slots)."""

    def __post_init__(self) -> None:
        env = child_env()
        self.tools = self.tools or toolchains(env.get("PATH", ""), _tool_homes())

    def run(
        self,
        repo_settings: RepoSettings,
        tier: Tier,
        commit: str,
        main: str,
        log_path: Path,
        *,
        agent_id: str,
        timeout: float,
        cancel: threading.Event | None = None,
    ) -> OracleResult:
        """Judge `commit` with main's harness; a green run of main itself refreshes the slot's build cache."""
        run_dir = self.folder / "runs" / secrets.token_hex(6)
        harness = repo_settings.harness()
        try:
            verdict = self._run(repo_settings.oracle, harness, tier, commit, main, log_path, run_dir, agent_id,
                                timeout, cancel)  # fmt: skip
        finally:
            if not self.keep_runs:
                shutil.rmtree(run_dir, ignore_errors=True)
        self._record(verdict, commit)
        return verdict

    def _record(self, verdict: OracleResult, commit: str) -> None:
        """The judge's own log of its verdicts (tier, commit, green, passed), for people and tests to read."""
        line = {"tier": verdict.tier, "commit": commit, "ok": verdict.ok, "passed": verdict.passed}
        with open(self.folder / "verdicts.jsonl", "a") as fh:
            fh.write(json.dumps(line) + "\n")

    def _run(
        self,
        oracle: OracleSettings,
        harness: list[str],
        tier: Tier,
        commit: str,
        main: str,
        log_path: Path,
        run_dir: Path,
        agent_id: str,
        timeout: float,
        cancel: threading.Event | None,
    ) -> OracleResult:
        cache = run_dir / "cache"
        with self._tree(commit) as src:
            self._seed_cache(cache)
            if oracle.build is None:  # legacy contract: one sandboxed command, harness put back from main
                _replace(self.mirror, commit, main, src, harness)
                command = oracle.fast if tier == "fast" else oracle.full
                extra = {"AGENT_ID": agent_id, "SWARM_COMMIT": commit, "SWARM_ORACLE_TIER": tier}
                result = self._sandboxed(command, oracle, src, run_dir, log_path, timeout, cancel, extra)
                summary = runners.summarize(oracle.runner, proc.tail(log_path, runners.OUTPUT_BYTES), src)
                verdict = oracle_mod.verdict(tier, command, result, summary, log_path)
            else:
                verdict = self._build_and_judge(oracle, harness, tier, commit, main, log_path, src, run_dir, agent_id,
                                                timeout, cancel)  # fmt: skip
        if verdict.ok:
            self._keep(cache, commit, promote=commit == main)
        return verdict

    @contextmanager
    def _tree(self, commit: str) -> Iterator[Path]:
        """The slot's tree folder holding exactly `commit`'s files, for one run at a time.

        Kept in step rather than written whole: a run's cost follows the change, not the repository. `sync` puts
        back whatever the last run changed there before anything reads it; if it cannot (a run left something it
        may not remove, a damaged index), the folder is moved aside and written anew, so one bad run never stops
        the slot. Only runs in this folder seed its build cache (see `_keep`)."""
        tree = self.folder / "tree"
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / "tree.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one run at a time: a second one waits rather than share the files
            try:
                self.mirror.sync(commit, tree)
            except (SwarmError, OSError) as exc:
                log.warning("writing the judge's tree anew (%s)", exc)
                aside = self.folder / f"tree.old-{secrets.token_hex(3)}"
                tree.rename(aside)  # the judge's own folder: a sandboxed run could not make this fail
                repo.index_of(tree).unlink(missing_ok=True)
                _wipe(aside)
                self.mirror.sync(commit, tree)
            yield tree

    def _build_and_judge(
        self,
        oracle: OracleSettings,
        harness: list[str],
        tier: Tier,
        commit: str,
        main: str,
        log_path: Path,
        src: Path,
        run_dir: Path,
        agent_id: str,
        timeout: float,
        cancel: threading.Event | None,
    ) -> OracleResult:
        assert oracle.build is not None
        build_log = log_path.with_name(log_path.stem + "-build.log")
        built = self._sandboxed(oracle.build, oracle, src, run_dir, build_log, timeout, cancel, {})
        # The build sandbox is dead: nothing of the candidate can write its output or its artifacts any more.
        unit = _unit_counts(oracle, proc.tail(build_log, runners.OUTPUT_BYTES), src)
        if not built.ok:
            log_path.write_text(f"build `{oracle.build}`: {built.describe()} (see {build_log.name})\n")
            return OracleResult(tier, False, reason=f"{tier} build `{oracle.build}`: {built.describe()}",
                                exit_code=built.returncode, log_path=str(log_path))  # fmt: skip
        artifacts, problem = _collect(oracle, src, run_dir)
        if problem:
            return OracleResult(tier, False, reason=f"{tier} build: {problem}", log_path=str(log_path))
        judge_dir = run_dir / "judge"
        repo.export(self.mirror, main, judge_dir, only=harness)
        command = oracle.fast if tier == "fast" else oracle.full
        env = {**self._harness_env(oracle, run_dir, artifacts, agent_id, tier), "SWARM_COMMIT": commit}
        result = proc.run(["bash", "-c", command], cwd=judge_dir, env=env, timeout=timeout, log_path=log_path,
                          cancel=cancel, measure=True)  # fmt: skip
        summary = runners.summarize(oracle.runner, proc.tail(log_path, runners.OUTPUT_BYTES), judge_dir)
        if summary is not None and unit is not None:
            summary = _with_unit(summary, unit)
        verdict = oracle_mod.verdict(tier, command, result, summary, log_path)
        verdict.seconds += built.duration
        verdict.cpu_seconds += built.cpu
        verdict.cpu_waited += built.cpu_waited
        return verdict

    def _sandboxed(
        self,
        command: str,
        oracle: OracleSettings,
        src: Path,
        run_dir: Path,
        log_path: Path,
        timeout: float,
        cancel: threading.Event | None,
        extra: dict[str, str],
    ) -> proc.ProcResult:
        """Run the candidate's code: its tree and build cache writable at fixed paths, nothing of the swarm."""
        for name in ("home", "tmp"):
            (run_dir / name).mkdir(parents=True, exist_ok=True)
        env = {**child_env(), **_tool_env(), "HOME": HOME, "TMPDIR": TMP, **extra}
        env.update({k: v.replace("{cache}", CACHE) for k, v in oracle.env.items()})
        argv = ["bash", "-c", command]
        if self.sandboxed:
            box = Sandbox(
                ro=self.tools,
                binds=[(src, SRC), (run_dir / "cache", CACHE), (run_dir / "home", HOME),
                       (run_dir / "tmp", TMP)],
                masked=masked_libraries(),
            )  # fmt: skip
            argv = box.with_programs(_named_programs(command)).wrap(argv, Path(SRC))
            cwd = run_dir
        else:  # explicitly unsafe: same layout by real paths
            env.update(HOME=str(run_dir / "home"), TMPDIR=str(run_dir / "tmp"))
            env.update({k: v.replace("{cache}", str(run_dir / "cache")) for k, v in oracle.env.items()})
            cwd = src
        return proc.run(argv, cwd=cwd, env=env, timeout=timeout, log_path=log_path, cancel=cancel, measure=True)

    def _harness_env(
        self, oracle: OracleSettings, run_dir: Path, artifacts: Path, agent_id: str, tier: Tier
    ) -> dict[str, str]:
        home = run_dir / "judge-home"
        home.mkdir(exist_ok=True)
        env = {**child_env(), "HOME": str(home), "TMPDIR": str(home), "AGENT_ID": agent_id}
        env.update(SWARM_ORACLE_TIER=tier, SWARM_ARTIFACTS=str(artifacts), SWARM_JUDGE_SEED=self.seed)
        if self.sandboxed:
            env["SWARM_JAIL"] = json.dumps(jail.prefix_for(artifacts))
            server = self._jail_server()
            if server is not None:
                env["SWARM_JAIL_SERVER"] = json.dumps(jailserver.spec(artifacts, server))
        return env

    def _jail_server(self) -> Path | None:
        """The compiled jail server, when it is offered and can be built here (else harnesses use SWARM_JAIL)."""
        if not self.jail_server:
            return None
        return jailserver.program(self.jail_cache or self.folder.parent / "jail-server")

    def landed(self, commit: str) -> None:
        """`commit` is main now: if this slot's last green build was of it, that build seeds the next runs."""
        pending = self.folder / "pending-cache"
        if _built_from(pending) == commit:
            self._replace_cache(pending, self.folder / "green-cache")

    def _seed_cache(self, cache: Path) -> str | None:
        """A copy of the slot's green cache (never shared: a run may write anything in it); the commit it was of."""
        green = self.folder / "green-cache"
        # A cache holding nothing but its mark (an oracle that keeps no build state) needs no copy process.
        if green.is_dir() and _built_from(green) and any(p.name != BUILT_FROM for p in green.iterdir()):
            proc.run(["cp", "-a", "--reflink=auto", str(green), str(cache)], cwd=self.folder, env=child_env(),
                     timeout=600, log_path=self.folder / "cache-copy.log")  # fmt: skip
        cache.mkdir(parents=True, exist_ok=True)
        (cache / BUILT_FROM).unlink(missing_ok=True)  # the run's own build may not claim where it came from
        return _built_from(green)

    def _keep(self, cache: Path, commit: str, promote: bool) -> None:
        """A green run's cache becomes the slot's next starting point once its tree is main's: at once for a run of
        main itself, after the landing (see `landed`) for a candidate's; a build that never lands seeds nothing."""
        (cache / BUILT_FROM).write_text(commit)
        self._replace_cache(cache, self.folder / ("green-cache" if promote else "pending-cache"))

    def _replace_cache(self, new: Path, dest: Path) -> None:
        old = self.folder / f"{dest.name}.old-{secrets.token_hex(3)}"
        if dest.exists():
            dest.rename(old)
        new.rename(dest)
        shutil.rmtree(old, ignore_errors=True)


def _wipe(path: Path) -> None:
    """Remove a folder a sandboxed run wrote in, whatever modes it left on its folders (what still resists stays)."""

    def writable(func: Any, name: str, _: Any) -> None:
        try:
            Path(name).parent.chmod(0o700)
            func(name)
        except OSError as exc:
            log.warning("could not remove %s: %s", name, exc)

    shutil.rmtree(path, onerror=writable)


def _built_from(cache: Path) -> str | None:
    marker = cache / BUILT_FROM
    return marker.read_text().strip() if marker.is_file() else None


def _named_programs(command: str) -> list[str]:
    """The absolute paths a shell command names (e.g. a venv's python): the sandbox must see them to run them."""
    try:
        return [word for word in shlex.split(command) if word.startswith("/")]
    except ValueError:
        return []


def _replace(mirror: Mirror, commit: str, main: str, src: Path, harness: list[str]) -> None:
    """Put the harness back as on main: the candidate's own files under those globs are removed first.

    `src` holds exactly `commit`'s files (`Mirror.sync`), so its files under the globs are read from the commit's
    tree, not from a walk of the folder."""
    for rel in sorted(repo.matching_entries(mirror, commit, harness), reverse=True):
        path = src / rel
        if path.is_symlink() or path.is_file():
            path.unlink()
    repo.export(mirror, main, src, only=harness)


def _collect(oracle: OracleSettings, src: Path, run_dir: Path) -> tuple[Path, str]:
    """Copy the declared artifacts out of the dead build's folders; a link or a missing file is refused."""
    out = run_dir / "artifacts"
    out.mkdir(exist_ok=True)
    for name, declared in oracle.artifacts.items():
        path = declared.replace("{cache}", CACHE)
        cached = path.startswith(CACHE)
        root = run_dir / "cache" if cached else src
        real = Path(path.replace(CACHE, str(root), 1)) if cached else src / path
        if real.is_symlink() or not real.is_file() or not real.resolve().is_relative_to(root.resolve()):
            return out, f"artifact {name!r} ({declared}) is missing or not a regular file"
        shutil.copyfile(real, out / name)
        (out / name).chmod(0o555)
    return out, ""


def _unit_counts(oracle: OracleSettings, output: str, src: Path) -> dict[str, int] | None:
    """The unit tests' counts from the build's output, read by `unit_runner` (cargo: summed over test binaries)."""
    if oracle.unit_runner is None:
        return None
    summary = runners.summarize(oracle.unit_runner, output, src)
    if summary is None:
        return {"passed": 0, "failed": 0, "skipped": 0}
    return {k: int(summary.get(k) or 0) for k in ("passed", "failed", "skipped")}


def _with_unit(summary: dict[str, Any], unit: dict[str, int]) -> dict[str, Any]:
    """Unit tests count as one more area, under the same no-drop rules as the harness's areas."""
    areas = dict(summary.get("areas") or {})
    areas["unit"] = unit
    out = {**summary, "areas": areas}
    for key in ("passed", "failed", "skipped"):
        out[key] = int(summary.get(key) or 0) + unit[key]
    return out


def _tool_homes() -> list[str]:
    return list(_tool_env().values())


def _tool_env() -> dict[str, str]:
    """The Rust toolchain's home (read-only in the sandbox); CARGO_HOME stays the sandbox's own, fresh per run."""
    return toolchain_env(("RUSTUP_HOME",))
