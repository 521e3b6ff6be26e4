"""The one way every adapter starts its agent's process: `launch`, around `proc.run`, with a stall watchdog.

Every adapter (the vendor CLIs, `command`, `replay`, doctor's --version and --help, the probe) goes through
`launch`, so whatever must wrap an agent's process (a sandbox) is added here once, for all of them.

The watchdog fails fast where a CLI would not: it stops a run whose stdout shows no progress (the adapter says
which lines are progress; a CLI's own retry notices are not) for `connect_timeout` seconds before its first
progress, or for `idle_timeout` seconds after it. Both are far below the attempt's timeout.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from swarm import egress, proc
from swarm.agents.base import AgentRun
from swarm.sandbox import Sandbox

log = logging.getLogger(__name__)

WATCH_SECONDS = 0.1
Stall = Literal["connect", "idle"]


@dataclass(frozen=True)
class Watch:
    """When a run counts as stalled: no progress line within these seconds (None: never)."""

    progress: Callable[[str], bool] = lambda line: bool(line.strip())
    connect_timeout: float | None = None
    idle_timeout: float | None = None


@dataclass(frozen=True)
class Launched:
    """How the process ended, and whether the watchdog stopped it (then `ended.cancelled` is true too)."""

    ended: proc.ProcResult
    stalled: Stall | None = None
    silent_for: float = 0.0
    progressed: bool = False
    egress: tuple[str, ...] = ()
    """What the egress proxy refused or could not reach during the run ("refused host:port", ...)."""


def launch(
    run: AgentRun,
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    cwd: Path | None = None,
    stderr_path: Path | None = None,
    watch: Watch | None = None,
) -> Launched:
    """Run the agent's argv for `run` (its worktree, timeout, log, cancel and on_start), watched for stalls."""
    run.log_path.parent.mkdir(parents=True, exist_ok=True)
    run.log_path.unlink(missing_ok=True)  # the watchdog must not read an earlier run's log as progress
    env = {**env, **private_tmp(run.home)}
    watcher = _Watcher(run, watch or Watch())
    thread = threading.Thread(target=watcher.loop, name=f"watch-{run.task_id}", daemon=True)
    thread.start()
    cwd = cwd or run.worktree
    notes: list[str] = []
    try:
        with _egress(run, notes) as box:
            # The one place every agent's process is put in its sandbox (swarm.sandbox), with the programs it names.
            command = box.with_programs(argv).wrap(argv, cwd) if box is not None else list(argv)
            ended = proc.run(
                command,
                cwd=cwd,
                env=env,
                timeout=run.timeout,
                log_path=run.log_path,
                stderr_path=stderr_path,
                cancel=watcher.stop,
                on_start=run.on_start,
            )
    finally:
        watcher.done.set()
        thread.join()
    if watcher.stalled:
        log.warning("%s of %s stalled (%s): no progress for %.0fs", argv[0], run.task_id, watcher.stalled,
                    watcher.silent_for)  # fmt: skip
    return Launched(ended, watcher.stalled, watcher.silent_for, watcher.progressed, tuple(dict.fromkeys(notes)))


@contextlib.contextmanager
def _egress(run: AgentRun, notes: list[str]) -> Iterator[Sandbox | None]:
    """The run's sandbox, with an egress proxy serving it for as long as the block runs when it is in `proxy`
    mode; the proxy's decisions go to <log>.egress.log next to the run's log, what it refused or could not reach
    into `notes`."""
    box = run.sandbox
    if box is None or box.network != "proxy":
        yield box
        return
    log_path = egress_log(run.log_path)
    log_path.unlink(missing_ok=True)
    served: list[egress.Proxy] = []
    try:
        with egress.serving(box.allow_hosts, log_path) as proxy:
            served.append(proxy)
            yield replace(box, proxy=proxy.socket_path)
    finally:  # once the proxy has stopped: what was still connecting then counts as unreachable
        for proxy in served:
            notes += [f"refused {t}" for t in proxy.refused] + [f"could not reach {t}" for t in proxy.unreachable]


def egress_log(log_path: Path) -> Path:
    """Where the egress proxy's decisions for a run go: agent.log -> agent.egress.log."""
    return log_path.with_name(f"{log_path.stem}.egress{log_path.suffix or '.log'}")


def private_tmp(home: Path) -> dict[str, str]:
    """An empty temp folder of this slot only (mode 700), fresh for each run: no prompt context left in the shared
    /tmp (gemini writes error reports there) and nothing carried from one task to the next."""
    tmp = home / "tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(mode=0o700, parents=True)
    return {"TMPDIR": str(tmp), "TMP": str(tmp), "TEMP": str(tmp)}


class _Watcher:
    """Reads the growing stdout log; sets `stop` on the lease's cancel or when progress stops for too long."""

    def __init__(self, run: AgentRun, watch: Watch) -> None:
        self.run, self.watch = run, watch
        self.stop, self.done = threading.Event(), threading.Event()
        self.stalled: Stall | None = None
        self.progressed = False
        self.silent_for = 0.0
        self._offset, self._partial = 0, b""
        self._last = time.monotonic()

    def loop(self) -> None:
        while not self.done.wait(WATCH_SECONDS):
            if self.run.cancel.is_set():
                self.stop.set()
                return
            self._read()
            limit = self.watch.idle_timeout if self.progressed else self.watch.connect_timeout
            self.silent_for = time.monotonic() - self._last
            if limit is not None and self.silent_for >= limit:
                self.stalled = "idle" if self.progressed else "connect"
                self.stop.set()
                return

    def _read(self) -> None:
        try:
            with open(self.run.log_path, "rb") as f:
                if os.fstat(f.fileno()).st_size < self._offset:
                    self._offset, self._partial = 0, b""  # proc.run starts a fresh file
                f.seek(self._offset)
                chunk = f.read()
        except FileNotFoundError:
            return
        self._offset += len(chunk)
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        for line in lines:
            if self.watch.progress(line.decode("utf-8", errors="replace")):
                self.progressed, self._last = True, time.monotonic()
