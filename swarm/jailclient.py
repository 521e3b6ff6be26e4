"""The harness's side of the jail server: run a jailed program many times for one bubblewrap start per thread.

Standard library only, and no import of the swarm: a judge's harness comes from the judged repository; it loads
this file by the path the judge gives in SWARM_JAIL_SERVER (its "client") and calls `from_env`. Each server
(swarm/jailserver.c, the first process of one bubblewrap jail) serves one session at a time, so calls that run at
once are in different jails, as with a jail per call. A session is one folder the program may write, emptied
before the next session; the jail's /tmp is emptied by the server after every call.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV = "SWARM_JAIL_SERVER"
GRACE = 5.0
"""Seconds past a call's timeout before the harness stops waiting for the server and kills the whole jail."""
CHUNK = 65536


class JailError(RuntimeError):
    """The jail server could not run a call (it failed to start, or died): not the jailed program's doing."""


@dataclass(frozen=True)
class Result:
    """How one call ended: returncode < 0 is the signal that killed it; a timed-out call has returncode -9."""

    returncode: int
    stdout: bytes
    stderr: bytes
    timed_out: bool = False


def from_env(env: Mapping[str, str] | None = None) -> Pool | None:
    """The pool of jail servers the judge offers in SWARM_JAIL_SERVER, or None when it offers none."""
    raw = (os.environ if env is None else env).get(ENV)
    return Pool(json.loads(raw)) if raw else None


def jail_env() -> dict[str, str]:
    """The harness's environment without the swarm's variables: the judge's secret seed of unseen variants
    (SWARM_JUDGE_SEED) and the rest are for the harness, not for the program it judges."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}


class Server:
    """One jail with the jail server as its first process; `{dir}` in the command line is its own scratch folder."""

    def __init__(self, argv: list[str], root: Path) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="jail-", dir=root))
        self.work = self.root / "work"
        self.work.mkdir()
        self.log = tempfile.TemporaryFile(dir=root)  # noqa: SIM115 - bubblewrap's complaints, kept till close()
        self.ctl, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.proc = subprocess.Popen([a.replace("{dir}", str(self.root)) for a in argv], stdin=theirs.fileno(),
                                         stdout=self.log, stderr=self.log, close_fds=True, env=jail_env())  # fmt: skip
        finally:
            theirs.close()

    def fresh(self) -> Path:
        """The session's folder, emptied: nothing of an earlier session is left for this one. (The folder itself
        stays: an rmdir costs milliseconds here, with mounts of many namespaces to check.)"""
        for folder in (self.root, self.work):
            os.chmod(folder, 0o700)
            for child in folder.iterdir():
                if child != self.work:
                    _remove(child)
        return self.work

    def run(self, argv: list[str], data: bytes, cwd: Path, timeout: float) -> Result:
        """Run argv in the jail with `data` on its stdin; when it answers, no process of the call is left."""
        try:
            return self._run(argv, data, cwd, timeout)
        except JailError:
            self.close()  # a jail that failed once is not trusted with another call
            raise

    def _run(self, argv: list[str], data: bytes, cwd: Path, timeout: float) -> Result:
        (in_r, in_w), (out_r, out_w), (err_r, err_w) = os.pipe(), os.pipe(), os.pipe()
        request = "\0".join([str(max(1, round(timeout * 1000))), str(cwd), *argv]).encode() + b"\0"
        try:
            socket.send_fds(self.ctl, [request], [in_r, out_w, err_w])
        except OSError as exc:
            for fd in (in_w, out_r, err_r):
                os.close(fd)
            raise JailError(f"the jail server is gone ({exc}): {self.complaints()}") from None
        finally:
            for fd in (in_r, out_w, err_w):  # the call's ends are the jail's now: EOF comes when its processes end
                os.close(fd)
        deadline = time.monotonic() + timeout + GRACE
        try:
            out, err = _exchange(in_w, out_r, err_r, data, deadline)
        finally:
            os.close(out_r)
            os.close(err_r)
        return _result(self._answer(deadline), out, err)

    def _answer(self, deadline: float) -> str:
        self.ctl.settimeout(max(0.0, deadline - time.monotonic()))
        try:
            answer = self.ctl.recv(4096).decode("ascii", "replace")
        except (TimeoutError, OSError) as exc:
            raise JailError(f"the jail server did not answer ({exc}): {self.complaints()}") from None
        if not answer:
            raise JailError(f"the jail server ended: {self.complaints()}")
        if answer.startswith("error"):
            raise JailError(f"the jail server refused a call: {answer}")
        return answer

    def complaints(self) -> str:
        self.log.seek(0)
        text = self.log.read().decode("utf-8", "replace").strip()
        return text[-2000:] or f"exit status {self.proc.poll()}"

    @property
    def closed(self) -> bool:
        return self.ctl.fileno() < 0

    def close(self) -> None:
        """End the jail: its first process sees the socket close and exits, which kills all of the jail."""
        if self.closed:
            return
        self.ctl.close()
        try:
            self.proc.wait(timeout=GRACE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.root, ignore_errors=True)


class Pool:
    """Jail servers for a harness's threads: a session takes an idle one (or starts one) and gives it back."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.argv: list[str] = list(spec["argv"])
        self.root = Path(tempfile.mkdtemp(prefix="jail-servers-"))
        self.idle: list[Server] = []
        self.lock = threading.Lock()

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A server to this caller alone, with a fresh writable folder; a server that failed is not reused."""
        with self.lock:
            server = self.idle.pop() if self.idle else None
        server = server or Server(self.argv, self.root)
        try:
            work = server.fresh()
        except OSError:  # what the last session left cannot be removed: that jail is not reused
            server.close()
            server = Server(self.argv, self.root)
            work = server.fresh()
        try:
            yield Session(server, work)
        except BaseException:
            server.close()
            raise
        if not server.closed:
            with self.lock:
                self.idle.append(server)

    def close(self) -> None:
        with self.lock:
            servers, self.idle = self.idle, []
        for server in servers:
            server.close()
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass(frozen=True)
class Session:
    """One server's jail for one caller: `folder` is the one folder its program may write."""

    server: Server
    folder: Path

    def run(self, argv: list[str], data: bytes, timeout: float) -> Result:
        return self.server.run(argv, data, self.folder, timeout)


def _exchange(stdin: int, stdout: int, stderr: int, data: bytes, deadline: float) -> tuple[bytes, bytes]:
    """Write data to the call's stdin and close it; read its stdout and stderr to their ends, which come when the
    server has swept the call's processes."""
    chunks: dict[int, list[bytes]] = {stdout: [], stderr: []}
    view, writing = memoryview(data), True
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(stdout, selectors.EVENT_READ)
            sel.register(stderr, selectors.EVENT_READ)
            os.set_blocking(stdin, False)
            sel.register(stdin, selectors.EVENT_WRITE)
            while len(sel.get_map()) > 0:
                if writing and not view:
                    sel.unregister(stdin)
                    os.close(stdin)  # EOF: the program reads its input to the end
                    writing = False
                    continue
                left = deadline - time.monotonic()
                if left <= 0:
                    raise JailError("the jail server did not end a call past its timeout")
                for key, _ in sel.select(left):
                    fd = int(key.fd)
                    if fd == stdin:
                        try:
                            view = view[os.write(fd, view[:CHUNK]) :]
                        except BrokenPipeError:  # the program stopped reading: what it printed still counts
                            view = view[:0]
                        continue
                    chunk = os.read(fd, CHUNK)
                    if chunk:
                        chunks[fd].append(chunk)
                    else:
                        sel.unregister(fd)
    finally:
        if writing:
            os.close(stdin)
    return b"".join(chunks[stdout]), b"".join(chunks[stderr])


def _result(answer: str, out: bytes, err: bytes) -> Result:
    kind, _, value = answer.partition(" ")
    if kind == "timeout":
        return Result(-9, out, err, timed_out=True)
    if kind == "signal":
        return Result(-int(value), out, err)
    return Result(int(value), out, err)


def _remove(path: Path) -> None:
    """Remove what a jailed program left, even a folder it made unwritable."""
    if path.is_dir() and not path.is_symlink():
        os.chmod(path, 0o700)
        for child in path.iterdir():
            _remove(child)
        path.rmdir()
    else:
        path.unlink()
