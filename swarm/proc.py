"""The one place that starts processes: own session, stdin closed, output to a log, timeout kills the group.

`run` is for children the caller waits for (agents, oracles); `start_service` for long-lived ones (Redis, workers).
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import select
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
GRACE_SECONDS = 2.0
POLL_SECONDS = 0.05
SAMPLE_SECONDS = 0.25
"""How often a measured run's process tree is read for its CPU (see `Meter`)."""
TICKS = os.sysconf("SC_CLK_TCK")
SETPRIV = shutil.which("setpriv")
"""util-linux's setpriv: it arms the child's death signal and executes the program, so no Python code runs in the
child between fork and exec. A pre-exec function does, in a copy of a process whose other threads may have held a
lock when it forked (the dynamic loader's, say): that child waits for the lock for ever, and so does the thread
that started it. Without setpriv, a pre-exec function that only makes one call resolved beforehand (and then
checks that the parent is still there; setpriv does not, a window of microseconds between fork and its prctl)."""
_live_groups: set[int] = set()


@dataclass(frozen=True)
class ProcResult:
    """How a child process ended."""

    argv: tuple[str, ...]
    returncode: int | None
    timed_out: bool
    cancelled: bool
    duration: float
    log_path: Path
    cpu: float = 0.0
    """CPU seconds (user and system) of the child and of every descendant it waited for, or, with `measure`, the
    most its process tree was seen to have used (whichever is more). Killed at its timeout or cancelled, what its
    tree was seen to use (0 unmeasured): a run cut short by CPU contention still shows what it wanted."""
    cpu_waited: float = 0.0
    """With `measure`: seconds its threads were seen waiting for a CPU (ready to run, another process on it)."""

    @property
    def cpu_wanted(self) -> float:
        """CPU seconds the run would have used with the cores to itself: what it ran, and what it waited to run.
        Over `duration`, how many cores it kept busy or wanted to; unlike `cpu`, not lowered by what else ran."""
        return self.cpu + self.cpu_waited

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and not self.cancelled

    @property
    def signalled(self) -> bool:
        return self.returncode is not None and self.returncode < 0

    def describe(self) -> str:
        if self.timed_out:
            return f"timed out after {self.duration:.0f}s (process group killed)"
        if self.cancelled:
            return "cancelled (process group killed)"
        if self.signalled:
            return f"killed by signal {-(self.returncode or 0)}"
        return f"exit code {self.returncode}"


def run(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    log_path: Path,
    stderr_path: Path | None = None,
    cancel: threading.Event | None = None,
    on_start: Callable[[int], None] | None = None,
    die_with_parent: bool = True,
    measure: bool = False,
) -> ProcResult:
    """Run argv in a new session with stdin from /dev/null and output to log_path (stderr too, unless given).

    The whole process group is killed when `timeout` passes or `cancel` is set, and after a normal exit too, so
    nothing the child left in the background outlives it. With `die_with_parent` the child is SIGKILLed by the
    kernel when the thread that started it dies (a worker SIGKILLed mid-run never leaves its agent running).
    With `measure`, the child's process tree is read every SAMPLE_SECONDS (a `Meter`): its CPU, since a sandbox's
    first process does not wait for what runs inside it (bubblewrap's init reports the exit and the sandbox is torn
    down), so what its tree used reaches no wait4; and how long its threads waited for a CPU.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    command, preexec = list(argv), None
    if die_with_parent and SETPRIV:
        command = [SETPRIV, "--pdeathsig", "KILL", "--", *argv]
    elif die_with_parent:
        preexec = _death_signal(os.getpid())
    # A fresh file per run: what a caller reads back (an oracle's summary line) must come from this run only.
    with open(log_path, "wb") as out, open(stderr_path or os.devnull, "wb") as err:
        try:
            if command[0] == SETPRIV and not _runnable(argv[0], cwd, env):  # as Popen would say without setpriv
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), argv[0])
            proc = subprocess.Popen(
                command,
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err if stderr_path else subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=preexec,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            out.write(f"swarm: could not start {argv[0]!r}: {exc}\n".encode())
            return ProcResult(tuple(argv), 127, False, False, 0.0, log_path)
        _live_groups.add(proc.pid)
        try:
            meter = Meter(proc.pid) if measure else None
            timed_out, cancelled, cpu = _watch(proc, start + timeout, cancel, on_start, meter)
        except BaseException:
            kill_group(proc.pid, proc)  # whatever went wrong here, the child's group must not outlive it
            _live_groups.discard(proc.pid)
            raise
        if timed_out or cancelled:
            log.warning("stopping %s (pid %d): %s", argv[0], proc.pid, "timeout" if timed_out else "cancelled")
            kill_group(proc.pid, proc)
        else:
            kill_group(proc.pid, None)
        _live_groups.discard(proc.pid)
    duration = time.monotonic() - start
    waited = meter.waited if meter is not None else 0.0
    return ProcResult(tuple(argv), proc.returncode, timed_out, cancelled, duration, log_path, cpu, waited)


def _runnable(program: str, cwd: Path, env: Mapping[str, str]) -> bool:
    """Whether exec would find `program` (a path, from `cwd`; a name, on the child's PATH)."""
    if "/" in program:
        path = cwd / program
        return path.is_file() and os.access(path, os.X_OK)
    return shutil.which(program, path=env.get("PATH", os.defpath)) is not None


def _death_signal(parent: int) -> Callable[[], None]:
    """A pre-exec step asking the kernel to SIGKILL the child when its parent dies (Linux PR_SET_PDEATHSIG), for a
    machine without setpriv. The C function is looked up here, in the parent: in the child, that lookup takes the
    dynamic loader's lock, which another thread of the parent may have held when it forked."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    kill = int(signal.SIGKILL)

    def arm() -> None:
        if prctl(PR_SET_PDEATHSIG, kill, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent:  # the parent died before the signal was armed: nobody is left to wait for us
            os.kill(os.getpid(), signal.SIGKILL)

    return arm


def _watch(
    proc: subprocess.Popen[bytes],
    deadline: float,
    cancel: threading.Event | None,
    on_start: Callable[[int], None] | None,
    meter: Meter | None = None,
) -> tuple[bool, bool, float]:
    """Wait for the child until it exits, the deadline passes or cancel is set: (timed_out, cancelled, cpu).

    The child is reaped here with wait4, which also reports the CPU its tree used (a process's usage counts its
    waited-for descendants'), so the train can tell an oracle that computes from one that waits."""
    if on_start:
        try:
            on_start(proc.pid)
        except Exception as exc:  # noqa: BLE001 - bookkeeping must not leave the child unwatched
            log.warning("on_start of pid %d failed: %s", proc.pid, exc)
    sample = time.monotonic() + SAMPLE_SECONDS
    with _exit_watch(proc.pid) as exited:
        while True:
            cpu = _reap(proc)
            if cpu is not None:
                return False, False, max(cpu, meter.cpu if meter is not None else 0.0)
            seen = meter.cpu if meter is not None else 0.0
            if cancel is not None and cancel.is_set():
                return False, True, seen
            now = time.monotonic()
            if now >= deadline:
                return True, False, seen
            if meter is not None and now >= sample:
                meter.read()
                sample = now + SAMPLE_SECONDS
            exited(min(deadline - now, POLL_SECONDS))


def _reap(proc: subprocess.Popen[bytes]) -> float | None:
    """Reap the child if it has exited, setting its return code: the CPU seconds of its tree, or None (running)."""
    try:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
    except ChildProcessError:  # reaped already (by Popen): no usage to read
        proc.poll()
        return 0.0
    if pid == 0:
        return None
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


@contextmanager
def _exit_watch(pid: int) -> Iterator[Callable[[float], None]]:
    """A wait of up to some seconds that ends as soon as the process exits (a pidfd; a short poll without one)."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # no pidfd (an old kernel): poll, starting fast as Popen.wait does
        delay = [0.0005]

        def nap(seconds: float) -> None:
            time.sleep(min(seconds, delay[0]))
            delay[0] = min(delay[0] * 2, POLL_SECONDS)

        yield nap
        return
    poller = select.poll()
    poller.register(fd, select.POLLIN)

    def until_exit(seconds: float) -> None:
        poller.poll(seconds * 1000)

    try:
        yield until_exit
    finally:
        os.close(fd)


class Meter:
    """What a live process tree is seen to use, read from /proc at each `read`: its CPU (each process's own and its
    reaped children's) and, per thread, how long it waited for a CPU (the scheduler's run-queue time): the children
    of every thread, as a build tool starts compilers from its threads. A few small reads per process, where
    psutil would read every process of the machine to find the children. What a process did after the last read,
    or a thread's wait when it lived between two reads, is not seen: a lower bound, for runs of seconds."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.cpu = 0.0
        self._waits: dict[int, int] = {}

    @property
    def waited(self) -> float:
        return sum(self._waits.values()) / 1e9

    def read(self) -> None:
        ticks, todo, seen = 0, [self.pid], set()
        while todo:
            one = todo.pop()
            if one in seen:
                continue
            seen.add(one)
            try:
                with open(f"/proc/{one}/stat", "rb") as fh:
                    stat = fh.read()
                ticks += sum(int(x) for x in stat[stat.rindex(b")") + 2 :].split()[11:15])  # u/s time, children's
                for task in os.listdir(f"/proc/{one}/task"):
                    with open(f"/proc/{one}/task/{task}/children", "rb") as fh:
                        todo += [int(child) for child in fh.read().split()]
                    with open(f"/proc/{one}/task/{task}/schedstat", "rb") as fh:
                        waited = int(fh.read().split()[1])  # ns on a CPU, ns waiting for one, time slices
                    self._waits[int(task)] = max(waited, self._waits.get(int(task), 0))
            except (OSError, ValueError, IndexError):  # gone meanwhile (its CPU is in its parent's once reaped)
                continue
        self.cpu = max(self.cpu, ticks / TICKS)


def kill_group(pgid: int, proc: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM the group, give it GRACE_SECONDS, then SIGKILL whatever is left."""
    if proc is None:
        _signal_group(pgid, signal.SIGKILL)
        return
    _signal_group(pgid, signal.SIGTERM)
    try:
        proc.wait(timeout=GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        pass
    _signal_group(pgid, signal.SIGKILL)
    proc.wait()


def kill_all() -> None:
    """SIGKILL every process group this process started and that is still running (the worker is going away)."""
    for pgid in list(_live_groups):
        _signal_group(pgid, signal.SIGKILL)
        _live_groups.discard(pgid)


def _environ(pid: int) -> dict[str, str]:
    """A process's environment ({} when it is gone, a zombie, or not ours to read)."""
    try:
        return dict(psutil.Process(pid).environ())
    except (psutil.Error, OSError):
        return {}


def _carries(pid: int, marker: str) -> bool:
    """Whether the process's environment holds `marker`, a NAME=value entry."""
    name, _, value = marker.partition("=")
    return _environ(pid).get(name) == value


def marked(marker: str) -> list[int]:
    """Pids of the live processes whose environment holds `marker` (e.g. SWARM_RUN=<id>)."""
    own = os.getpid()
    return [pid for pid in psutil.pids() if pid != own and alive(pid) and _carries(pid, marker)]


def kill_marked(marker: str) -> list[int]:
    """SIGKILL every process carrying `marker`: children of a run that left its process group (setsid, daemons)
    still inherit its environment."""
    killed = []
    for pid in marked(marker):
        try:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except OSError:
            continue
    return killed


def sweep_orphans(host: str, swarm: str) -> list[int]:
    """Kill processes left by dead worker processes of this host and this swarm: agents and oracles carry
    SWARM_WORKER=<host>-<pid> and SWARM_SWARM=<swarm id>; another swarm's processes are never touched."""
    killed = []
    for pid in psutil.pids():
        environ = _environ(pid)
        if environ.get("SWARM_SWARM") != swarm:
            continue
        owner_host, _, owner_pid = environ.get("SWARM_WORKER", "").rpartition("-")
        if owner_host == host and owner_pid.isdigit() and not alive(int(owner_pid)):
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except OSError:
                continue
    return killed


def alive(pid: int) -> bool:
    """Whether a process exists and runs (a zombie or a dead one holds no resources and runs no code)."""
    try:
        return psutil.Process(pid).status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.Error:
        return False


def kill_orphan(pgid: int, marker: str) -> bool:
    """Kill a group left by a dead worker on this host, if its leader still carries `marker` in its environment."""
    if not _carries(pgid, marker):
        return False
    _signal_group(pgid, signal.SIGKILL)
    return True


def descendants(pid: int | None = None) -> list[int]:
    """Pids of every live process below `pid` (this process when None), children of children included."""
    try:
        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


@dataclass
class Service:
    """A long-lived child (Redis, a Celery worker, beat, Flower): own session, stdin closed, output appended to a log.

    Unlike `run`, nothing waits for it: its owner checks `running()` and ends it with `stop_services`.
    """

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None


def start_service(name: str, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], log_path: Path) -> Service:
    """Start a long-lived child in its own session (so stopping it takes down everything it started)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        popen = subprocess.Popen(
            list(argv), cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    return Service(name, popen, log_path)


def stop_services(services: Sequence[Service], grace: float) -> None:
    """SIGTERM every service's group at once (Celery's warm shutdown), wait up to `grace`, SIGKILL what is left."""
    for service in services:
        _signal_group(service.pid, signal.SIGCONT)  # a stopped process cannot act on SIGTERM
        _signal_group(service.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for service in services:
        try:
            service.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("%s (pid %d) did not stop in %.0fs; killing it", service.name, service.pid, grace)
        _signal_group(service.pid, signal.SIGKILL)
        service.popen.wait()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def tail(path: Path, max_bytes: int = 64 * 1024) -> str:
    """The last max_bytes of a log, decoded leniently (agents may print anything)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            return f.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
