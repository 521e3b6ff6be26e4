"""proc.run: the one door for child processes. Own session, stdin closed, output to a log, and nothing of the
child's process group outlives it (timeout, cancel, or a normal exit)."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest

from swarm import proc
from swarm.environ import child_env
from tests.conftest import wait_for

ENV = child_env()
# A child that burns `s` CPU-seconds, however loaded the machine is (its own CPU clock, not the wall's).
BURN = "python3 -c 'import time\nt = time.process_time()\nwhile time.process_time() - t < {s}: pass'"


def sh(script: str, tmp_path: Path, timeout: float = 10, **kwargs: object) -> proc.ProcResult:
    return proc.run(
        ["bash", "-c", script], cwd=tmp_path, env=ENV, timeout=timeout, log_path=tmp_path / "out.log", **kwargs
    )  # type: ignore[arg-type]


def read_pid(path: Path) -> int:
    wait_for(lambda: path.is_file() and path.read_text().strip(), 5, f"pid file {path}")
    return int(path.read_text())


def test_output_and_exit_code_go_to_the_result_and_the_log(tmp_path: Path) -> None:
    result = sh("echo to-stdout; echo to-stderr >&2; exit 3", tmp_path)
    assert result.returncode == 3 and not result.ok and not result.timed_out and not result.cancelled
    assert result.describe() == "exit code 3"
    text = (tmp_path / "out.log").read_text()
    assert "to-stdout" in text and "to-stderr" in text
    assert result.log_path == tmp_path / "out.log"


def test_each_run_writes_a_fresh_log_and_its_folder_is_created(tmp_path: Path) -> None:
    """A caller reads a run's output back (the oracle's summary line): it must never be an earlier run's."""
    log = tmp_path / "deep" / "er" / "agent.log"
    for word in ("first", "second"):
        proc.run(["echo", word], cwd=tmp_path, env=ENV, timeout=5, log_path=log)
    assert log.read_text() == "second\n"


def test_stderr_can_go_to_its_own_file(tmp_path: Path) -> None:
    err = tmp_path / "err.log"
    result = proc.run(
        ["bash", "-c", "echo out; echo err >&2"], cwd=tmp_path, env=ENV, timeout=5, log_path=tmp_path / "o.log",
        stderr_path=err,
    )  # fmt: skip
    assert result.ok
    assert (tmp_path / "o.log").read_text() == "out\n" and err.read_text() == "err\n"


def test_cwd_and_env_are_the_ones_given(tmp_path: Path) -> None:
    result = proc.run(
        ["bash", "-c", 'pwd; echo "V=$ONLY_HERE"; echo "H=${SWARM_SECRET:-unset}"'],
        cwd=tmp_path, env={**ENV, "ONLY_HERE": "yes"}, timeout=5, log_path=tmp_path / "o.log",
    )  # fmt: skip
    assert result.ok
    lines = (tmp_path / "o.log").read_text().splitlines()
    assert lines == [str(tmp_path), "V=yes", "H=unset"]


def test_stdin_is_dev_null_so_a_reader_gets_eof_at_once(tmp_path: Path) -> None:
    result = sh('if read -r line; then echo "GOT:$line"; else echo EOF; fi; readlink /proc/self/fd/0', tmp_path, 5)
    assert result.ok and result.duration < 2
    lines = (tmp_path / "out.log").read_text().splitlines()
    assert lines == ["EOF", "/dev/null"]


def test_the_child_runs_in_its_own_session(tmp_path: Path) -> None:
    pids: list[int] = []
    code = "import os; print(os.getpid(), os.getpgid(0), os.getsid(0))"
    result = proc.run([sys.executable, "-c", code], cwd=tmp_path, env=ENV, timeout=5, log_path=tmp_path / "o.log",
                      on_start=pids.append)  # fmt: skip
    assert result.ok
    pid, pgid, sid = map(int, (tmp_path / "o.log").read_text().split())
    assert pids == [pid] and pgid == pid and sid == pid
    assert os.getpgid(0) != pgid


def test_a_timeout_kills_the_whole_group_including_a_background_grandchild(tmp_path: Path) -> None:
    script = f"sleep 300 & echo $! > {tmp_path}/grandchild; sleep 300"
    started = time.monotonic()
    result = sh(script, tmp_path, timeout=0.5)
    took = time.monotonic() - started
    grandchild = read_pid(tmp_path / "grandchild")
    assert result.timed_out and not result.ok and result.returncode is not None and result.returncode < 0
    assert "timed out" in result.describe()
    assert took < 0.5 + proc.GRACE_SECONDS + 1
    wait_for(lambda: not proc.alive(grandchild), 2, "the grandchild to die")


def test_a_timeout_kills_a_child_that_ignores_sigterm(tmp_path: Path) -> None:
    script = f"trap '' TERM; (trap '' TERM; sleep 300) & echo $! > {tmp_path}/grandchild; while :; do sleep 0.05; done"
    result = sh(script, tmp_path, timeout=0.3)
    grandchild = read_pid(tmp_path / "grandchild")
    assert result.timed_out and result.returncode == -9
    assert result.duration < 0.3 + proc.GRACE_SECONDS + 1
    wait_for(lambda: not proc.alive(grandchild), 2, "the grandchild to die")


def test_cancel_stops_a_running_child_quickly(tmp_path: Path) -> None:
    cancel = threading.Event()
    started = tmp_path / "started"
    out: list[proc.ProcResult] = []
    runner = threading.Thread(
        target=lambda: out.append(sh(f"sleep 300 & echo $! > {started}; wait", tmp_path, timeout=60, cancel=cancel))
    )
    runner.start()
    grandchild = read_pid(started)
    cancel.set()
    cancelled_at = time.monotonic()
    runner.join(timeout=10)
    assert not runner.is_alive()
    assert time.monotonic() - cancelled_at < 1.5, "cancel acts within a poll, not at the timeout"
    result = out[0]
    assert result.cancelled and not result.timed_out and not result.ok
    assert result.describe().startswith("cancelled")
    wait_for(lambda: not proc.alive(grandchild), 2, "the grandchild to die")


def test_a_cancel_set_before_start_stops_the_child_at_once(tmp_path: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    result = sh(f"touch {tmp_path}/started-anyway; sleep 300", tmp_path, timeout=60, cancel=cancel)
    assert result.cancelled and result.duration < 1.5


def test_a_normal_exit_kills_leftover_background_children(tmp_path: Path) -> None:
    result = sh(f"sleep 300 & echo $! > {tmp_path}/bg; exit 0", tmp_path, timeout=10)
    assert result.ok and result.returncode == 0
    assert result.duration < 5, "run() does not wait for the background child"
    bg = read_pid(tmp_path / "bg")
    wait_for(lambda: not proc.alive(bg), 2, "the background child to die")


def _group_members(pgid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[2]) == pgid and stat[0] not in ("Z", "X"):
                found.append(int(entry.name))
    return found


def test_nothing_of_the_group_survives_a_normal_exit(tmp_path: Path) -> None:
    pgids: list[int] = []
    script = "sleep 300 & (sleep 300 &) ; (sleep 300 & wait) & exit 0"
    result = proc.run(["bash", "-c", script], cwd=tmp_path, env=ENV, timeout=10, log_path=tmp_path / "o.log",
                      on_start=pgids.append)  # fmt: skip
    assert result.ok
    wait_for(lambda: not _group_members(pgids[0]), 2, "every member of the group to die")


def test_a_missing_executable_is_exit_127_with_a_message_in_the_log(tmp_path: Path) -> None:
    result = proc.run(["/nonexistent/agent-cli", "--x"], cwd=tmp_path, env=ENV, timeout=5, log_path=tmp_path / "o.log")
    assert result.returncode == 127 and not result.ok and not result.timed_out
    text = (tmp_path / "o.log").read_text()
    assert "/nonexistent/agent-cli" in text and "could not start" in text


def test_a_program_not_on_path_is_exit_127_too(tmp_path: Path) -> None:
    result = proc.run(["no-such-agent-cli-xyz"], cwd=tmp_path, env=ENV, timeout=5, log_path=tmp_path / "o.log")
    assert result.returncode == 127
    assert "no-such-agent-cli-xyz" in (tmp_path / "o.log").read_text()


def test_a_missing_cwd_is_a_failed_result_not_an_exception(tmp_path: Path) -> None:
    result = proc.run(["true"], cwd=tmp_path / "gone", env=ENV, timeout=5, log_path=tmp_path / "o.log")
    assert not result.ok and result.returncode == 127
    assert "gone" in (tmp_path / "o.log").read_text()


def test_a_child_killed_by_a_signal_is_reported_as_such(tmp_path: Path) -> None:
    result = sh("kill -SEGV $$", tmp_path)
    assert result.signalled and result.returncode == -11 and result.describe() == "killed by signal 11"


def test_kill_all_kills_running_groups(tmp_path: Path) -> None:
    pgids: list[int] = []
    out: list[proc.ProcResult] = []
    runner = threading.Thread(
        target=lambda: out.append(
            proc.run(
                ["sleep", "300"], cwd=tmp_path, env=ENV, timeout=60, log_path=tmp_path / "o.log", on_start=pgids.append
            )  # fmt: skip
        )
    )
    runner.start()
    wait_for(lambda: pgids, 5, "the child to start")
    proc.kill_all()
    runner.join(timeout=5)
    assert not runner.is_alive() and out[0].returncode == -9


def test_kill_orphan_needs_the_marker_in_the_leaders_environment(tmp_path: Path) -> None:
    pgids: list[int] = []
    runner = threading.Thread(
        target=lambda: proc.run(
            ["sleep", "300"],
            cwd=tmp_path,
            env={**ENV, "SWARM_TASK_ID": "t1"},
            timeout=60,
            log_path=tmp_path / "o.log",
            on_start=pgids.append,
        )  # fmt: skip
    )
    runner.start()
    wait_for(lambda: pgids, 5, "the child to start")
    assert proc.kill_orphan(pgids[0], "SWARM_TASK_ID=other") is False
    assert proc.alive(pgids[0])
    assert proc.kill_orphan(pgids[0], "SWARM_TASK_ID=t1") is True
    runner.join(timeout=5)
    assert not runner.is_alive()
    assert proc.kill_orphan(pgids[0], "SWARM_TASK_ID=t1") is False, "gone: nothing to kill"


def test_tail_of_a_multi_megabyte_log_is_only_its_end(tmp_path: Path) -> None:
    log = tmp_path / "big.log"
    with open(log, "wb") as f:
        f.write(b"A" * (3 * 1024 * 1024))
        f.write(b"\xff\xfe garbage bytes \n")
        f.write(b"the end\n")
    text = proc.tail(log, 1000)
    assert text.endswith("the end\n")
    assert len(text.encode("utf-8", errors="replace")) <= 1000 + 8, "no more than asked (plus replacement chars)"
    assert "\ufffd" in text, "undecodable bytes are replaced, not an error"
    default = proc.tail(log)
    assert len(default) <= 64 * 1024 + 4 and default.endswith("the end\n")


def test_tail_of_a_small_or_missing_log(tmp_path: Path) -> None:
    (tmp_path / "small.log").write_text("short\n")
    assert proc.tail(tmp_path / "small.log") == "short\n"
    assert proc.tail(tmp_path / "missing.log") == ""


@pytest.mark.parametrize("timeout", [0.0, -1.0])
def test_a_zero_or_negative_timeout_times_out_at_once(tmp_path: Path, timeout: float) -> None:
    result = sh("sleep 300", tmp_path, timeout=timeout)
    assert result.timed_out and result.duration < proc.GRACE_SECONDS + 1


def test_a_run_reports_the_cpu_its_tree_used_and_a_waiting_child_uses_none(tmp_path: Path) -> None:
    """The CPU of a grandchild the child waited for counts (wait4's usage of the child); a sleep costs none."""
    burned = sh(f"{BURN.format(s=0.4)}; true", tmp_path)
    assert burned.ok and burned.cpu >= 0.35, burned
    slept = sh("sleep 0.4", tmp_path)
    assert slept.ok and slept.cpu < 0.2 and slept.duration >= 0.4, slept
    assert sh(f"{BURN.format(s=0.2)}; exit 5", tmp_path).returncode == 5, "the exit code is still the child's"


def test_without_pidfds_a_run_still_ends_and_measures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An old kernel has no pidfd to wait on: the wait polls instead, with the same results."""

    def no_pidfd(pid: int) -> int:
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(os, "pidfd_open", no_pidfd)
    burned = sh(f"{BURN.format(s=0.3)}; exit 4", tmp_path)
    assert burned.returncode == 4 and burned.cpu >= 0.25, burned
    assert sh("sleep 5", tmp_path, timeout=0.5).timed_out
