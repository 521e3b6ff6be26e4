"""The sandbox: what a sandboxed run can see, write and reach, and that nothing it starts outlives it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from swarm import jail, proc, sandbox
from swarm.errors import SandboxUnavailable
from swarm.sandbox import Sandbox

pytestmark = pytest.mark.skipif(bool(sandbox.check()) and os.environ.get("CI") != "true", reason=sandbox.check())


def run_in(box: Sandbox, script: str, cwd: Path, tmp_path: Path, timeout: float = 30) -> tuple[int | None, str]:
    log = tmp_path / f"run-{os.urandom(3).hex()}.log"
    env = {"PATH": os.environ["PATH"]}
    result = proc.run(box.wrap(["bash", "-c", script], cwd), cwd=cwd, env=env, timeout=timeout, log_path=log)
    return result.returncode, log.read_text()


def test_sees_only_what_it_is_given(tmp_path: Path) -> None:
    ws, secret = tmp_path / "ws", tmp_path / "secret"
    ws.mkdir()
    secret.mkdir()
    (secret / "swarm.toml").write_text("redis_url = 'redis://:pw@host'\n")
    code, out = run_in(Sandbox(rw=[ws]), f"cat {secret}/swarm.toml; echo made > made.txt; ls /proc | head -3", ws,
                       tmp_path)  # fmt: skip
    assert "pw@host" not in out and "No such file" in out
    assert (ws / "made.txt").read_text() == "made\n"
    assert code == 0


def test_system_is_read_only(tmp_path: Path) -> None:
    code, out = run_in(Sandbox(), "touch /usr/swarm-probe || echo refused", Path("/"), tmp_path)
    assert "refused" in out
    assert not Path("/usr/swarm-probe").exists()


def test_other_processes_are_invisible(tmp_path: Path) -> None:
    """Its own PID namespace: the worker's processes (and their environments) are not there to read."""
    code, out = run_in(Sandbox(), f"ls /proc | grep -c '^[0-9]' ; test -e /proc/{os.getpid()}/environ && echo SEEN",
                       Path("/"), tmp_path)  # fmt: skip
    assert "SEEN" not in out
    assert int(out.split()[0]) < 10


def test_no_network_unless_asked(tmp_path: Path) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    try:
        probe = f"exec 3<>/dev/tcp/127.0.0.1/{port} && echo CONNECTED || echo refused"
        _, closed = run_in(Sandbox(), probe, Path("/"), tmp_path)
        _, open_ = run_in(Sandbox(network="host"), probe, Path("/"), tmp_path)
    finally:
        server.close()
    assert "CONNECTED" not in closed
    assert "CONNECTED" in open_


def test_nothing_outlives_the_sandbox(tmp_path: Path) -> None:
    """A process that leaves its group, its session and its environment still dies with the sandbox."""
    ws = tmp_path / "ws"
    ws.mkdir()
    script = "setsid env -i /bin/bash -c 'sleep 1000 & echo $! > pid; while true; do date > beat; sleep 0.2; done' &" \
             " sleep 1; echo started"  # fmt: skip
    code, out = run_in(Sandbox(rw=[ws]), script, ws, tmp_path)
    assert "started" in out
    assert (ws / "beat").exists() and (ws / "pid").exists()
    # The sandbox has ended: the escaped loop, which wrote every 0.2 s while alive, must have died with it.
    before = (ws / "beat").stat().st_mtime_ns
    assert not wait_for_change(ws / "beat", before, 2.0), "a process escaped the sandbox and still writes"
    leftover = subprocess.run(["pgrep", "-f", "sleep 1000"], capture_output=True, text=True).stdout.split()
    assert not leftover, f"processes outlived the sandbox: {leftover}"


def wait_for_change(path: Path, mtime_ns: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.stat().st_mtime_ns != mtime_ns:
            return True
        time.sleep(0.05)
    return False


def test_masked_file_cannot_be_read(tmp_path: Path) -> None:
    lib = tmp_path / "libsqlite3.a"
    lib.write_bytes(b"real library")
    _, out = run_in(Sandbox(ro=[tmp_path], masked=[lib]), f"cat {lib}; echo end", Path("/"), tmp_path)
    assert "real library" not in out and "end" in out


def test_the_system_sqlite_libraries_are_masked_and_found_again_from_the_cache() -> None:
    real = sorted(p for d in ("/usr/lib", "/usr/lib64") for n in sandbox.MASKED_FILES for p in Path(d).glob(f"**/{n}"))
    if not real:
        pytest.skip("no libsqlite3 on this machine")
    assert sandbox.masked_libraries() == real
    assert sandbox.masked_libraries() == real  # the second answer comes from the cache of the first walk


def test_jail_starts_no_other_program(tmp_path: Path) -> None:
    """An artifact in the jail cannot run sqlite3, a shell or python: none of them exist there."""
    bins = tmp_path / "bins"
    bins.mkdir()
    shutil.copy("/bin/echo", bins / "echo")
    work = tmp_path / "work"
    work.mkdir()
    argv = [a.replace("{dir}", str(work)) for a in jail.prefix_for(bins)]
    ok = subprocess.run([*argv, str(bins / "echo"), "inside"], capture_output=True, text=True, timeout=30)
    assert ok.stdout.strip() == "inside"
    for other in ("/usr/bin/sqlite3", "/bin/sh", "/usr/bin/python3"):
        refused = subprocess.run([*argv, other, "-c", "1"], capture_output=True, text=True, timeout=30)
        assert refused.returncode != 0, f"{other} ran in the jail"


def test_fails_closed_without_bubblewrap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "BWRAP", "no-such-bwrap-binary")
    sandbox.check.cache_clear()
    try:
        with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap.*SWARM_UNSAFE_NO_SANDBOX"):
            sandbox.require(unsafe_no_sandbox=False)
        sandbox.require(unsafe_no_sandbox=True)  # the loud opt-out: a warning, no error
    finally:
        sandbox.check.cache_clear()


def test_the_sandbox_benchmark_runs_and_prints_its_figures() -> None:
    script = Path(__file__).resolve().parent.parent / "scripts" / "bench_sandbox.py"
    out = subprocess.run([sys.executable, str(script), "--quick", "--runs", "1"], capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "sandboxed" in out.stdout and "overhead" in out.stdout


def test_a_measured_run_counts_the_cpu_used_inside_its_sandbox(tmp_path: Path) -> None:
    """bubblewrap's init reports the exit and the sandbox goes without anyone waiting for what ran inside, so no
    wait4 sees its CPU: a measured run reads the tree while it runs. Two burners at once and one before a pause:
    what ran in parallel and what ended before the run did are both counted."""
    burn = "python3 -c 'import time\nt = time.process_time()\nwhile time.process_time() - t < 0.6: pass'"
    argv = Sandbox().wrap(["bash", "-c", f"{burn} & {burn}; wait; {burn}; sleep 0.6"], Path("/"))
    log = tmp_path / "out.log"
    measured = proc.run(argv, cwd=tmp_path, env={"PATH": "/usr/bin:/bin"}, timeout=60, log_path=log, measure=True)
    assert measured.ok, log.read_text()
    assert measured.cpu >= 1.6, measured
    unmeasured = proc.run(argv, cwd=tmp_path, env={"PATH": "/usr/bin:/bin"}, timeout=60, log_path=log)
    assert unmeasured.ok and unmeasured.cpu < 0.5, "without `measure`, nothing inside the sandbox reaches wait4"


def test_a_measured_run_counts_what_it_waited_for_a_cpu(tmp_path: Path) -> None:
    """Twice as many burners as cores: each gets half a core and waits the rest, so the run wanted about twice the
    machine. The wait is what lets the train see that oracle runs sharing the cores wanted more than they got."""
    cores = len(os.sched_getaffinity(0))
    burn = "python3 -c 'import time\nt = time.process_time()\nwhile time.process_time() - t < 0.8: pass'"
    argv = Sandbox().wrap(["bash", "-c", " & ".join([burn] * (2 * cores)) + "; wait"], Path("/"))
    log = tmp_path / "out.log"
    run = proc.run(argv, cwd=tmp_path, env={"PATH": "/usr/bin:/bin"}, timeout=120, log_path=log, measure=True)
    assert run.ok, log.read_text()
    assert run.cpu_waited > 0 and run.cpu_wanted / run.duration > cores, run
