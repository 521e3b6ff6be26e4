"""The jail server: one bubblewrap jail serves many calls of a program, and a call can do there no more than in a
jail of its own (no other program, no SQL library, no network, nothing left running for the next call)."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from swarm import jailclient, jailserver, proc, sandbox
from swarm.environ import child_env

pytestmark = [
    pytest.mark.skipif(bool(sandbox.check()) and os.environ.get("CI") != "true", reason=sandbox.check()),
    pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler to build the jail server"),
]
HOSTILE = Path(__file__).resolve().parent / "data" / "jail" / "hostile.c"


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    bins = tmp_path_factory.mktemp("bins")
    done = proc.run(["cc", "-O2", "-o", str(bins / "engine"), str(HOSTILE)], cwd=bins, env=child_env(), timeout=120,
                    log_path=bins.parent / "cc.log")  # fmt: skip
    assert done.ok, (bins.parent / "cc.log").read_text()
    return bins / "engine"


@pytest.fixture
def pool(engine: Path, tmp_path: Path) -> Iterator[jailclient.Pool]:
    server = jailserver.program(tmp_path / "cache")
    assert server is not None
    pool = jailclient.Pool(jailserver.spec(engine.parent, server))
    yield pool
    pool.close()


def test_many_calls_in_one_jail(pool: jailclient.Pool, engine: Path) -> None:
    with pool.session() as s:
        results = [s.run([str(engine), "echo"], f"call {i}\n".encode(), 10) for i in range(20)]
        server = s.server
    assert [r.stdout for r in results] == [f"call {i}\n".encode() for i in range(20)]
    assert all(r.returncode == 0 for r in results)
    with pool.session() as again:
        assert again.server is server, "a second session started another jail"
        big = os.urandom(1 << 20)
        assert again.run([str(engine), "echo"], big, 10).stdout == big


def test_no_other_program_runs(pool: jailclient.Pool, engine: Path) -> None:
    with pool.session() as s:
        for other in ("/bin/sh", "/usr/bin/python3", "/usr/bin/sqlite3", str(Path(os.sys.executable).resolve())):
            through_engine = s.run([str(engine), "exec", other], b"", 10)
            assert through_engine.stdout == b"refused\n", f"the engine ran {other}"
            direct = s.run([other, "-c", "print(1)"], b"", 10)
            assert direct.returncode == 127 and direct.stdout == b"", f"the server ran {other}"


def test_no_sqlite_library_can_be_read(pool: jailclient.Pool, engine: Path) -> None:
    libs = [str(p) for d in ("/usr/lib", "/lib", "/usr/local/lib") for p in Path(d).glob("**/libsqlite3*")]
    with pool.session() as s:
        for lib in libs or ["/usr/lib/x86_64-linux-gnu/libsqlite3.so.0"]:
            assert s.run([str(engine), "open", lib], b"", 10).stdout == b"refused\n", f"{lib} was readable"


def test_no_network(pool: jailclient.Pool, engine: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        with pool.session() as s:
            out = s.run([str(engine), "connect", str(listener.getsockname()[1])], b"", 10).stdout
        assert out == b"refused\n"
        with pytest.raises(BlockingIOError):
            listener.accept()


def test_the_server_is_out_of_a_calls_reach(pool: jailclient.Pool, engine: Path) -> None:
    """A call can neither read the server's memory, environment or descriptors (it could forge answers through
    them) nor kill it."""
    with pool.session() as s:
        for path in ("/proc/1/environ", "/proc/1/mem", "/proc/1/maps"):
            assert s.run([str(engine), "open", path], b"", 10).stdout == b"refused\n", f"{path} was readable"
        assert s.run([str(engine), "fds", "1"], b"", 10).stdout == b"refused\n", "the server's descriptors opened"
        assert s.run([str(engine), "fds", "self"], b"", 10).stdout == b"opened\n"  # the probe itself works
        assert s.run([str(engine), "kill"], b"", 10).stdout == b"still here\n"
        assert s.run([str(engine), "echo"], b"alive", 10).stdout == b"alive"


def test_the_judges_secret_is_not_handed_on(engine: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWARM_JUDGE_SEED", "secret-seed")
    server = jailserver.program(tmp_path / "cache")
    assert server is not None
    pool = jailclient.Pool(jailserver.spec(engine.parent, server))
    try:
        with pool.session() as s:
            assert s.run([str(engine), "env"], b"", 10).stdout == b"none\n"
    finally:
        pool.close()


def test_a_process_left_behind_is_dead_before_the_next_call(pool: jailclient.Pool, engine: Path) -> None:
    with pool.session() as s:
        beat = s.folder / "beat"
        first = s.run([str(engine), "stray", str(beat)], b"", 10).stdout
        # The stray may write into its own call's output while that call still runs (it is one of the call's
        # processes); what is promised is that nothing of it reaches the next call.
        assert first.replace(b"STRAY\n", b"") == b"left one behind\n"
        assert not running(engine), "a process of the call outlived its answer"
        size = beat.stat().st_size if beat.exists() else 0
        later = s.run([str(engine), "wait"], b"", 10)
        assert later.stdout == b"quiet\n", "a process of an earlier call wrote into this call's output"
        time.sleep(0.2)
        assert (beat.stat().st_size if beat.exists() else 0) == size, "a process of an earlier call still runs"


def test_a_timeout_kills_the_call(pool: jailclient.Pool, engine: Path) -> None:
    with pool.session() as s:
        start = time.monotonic()
        slow = s.run([str(engine), "sleep"], b"", 0.5)
        assert slow.timed_out and time.monotonic() - start < 4
        assert not running(engine)
        assert s.run([str(engine), "echo"], b"next", 10).stdout == b"next", "the jail did not serve the next call"


def test_each_call_has_an_empty_tmp_and_ipc_and_each_session_an_empty_folder(
    pool: jailclient.Pool, engine: Path
) -> None:
    with pool.session() as s:
        (s.folder / "memo").write_text("for a later case")
        assert [s.run([str(engine), "tmp"], b"", 10).stdout for _ in range(2)] == [b"empty\n", b"empty\n"]
        assert [s.run([str(engine), "ipc"], b"", 10).stdout for _ in range(2)] == [b"created\n", b"created\n"]
        assert (s.folder / "memo").exists(), "the session's folder did not last across its calls"
    with pool.session() as s:
        assert list(s.folder.iterdir()) == []


def test_a_source_that_does_not_compile_is_reported_and_not_offered(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = tmp_path / "jailserver.c"
    broken.write_text("int main(void) { return missing; }\n")
    with caplog.at_level(logging.WARNING, logger="swarm.jailserver"):
        assert jailserver.program(tmp_path / "cache", source=broken) is None
    assert "could not compile the jail server" in caplog.text and "missing" in caplog.text


def running(engine: Path) -> list[int]:
    """Processes of the machine running `engine` (the jail's processes are seen from outside too)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.readlink(f"/proc/{pid}/exe") == str(engine):
                found.append(int(pid))
        except OSError:
            continue
    return found
