"""What a vendor CLI's sandbox can reach: an allow-listing HTTP CONNECT proxy the worker runs for one agent run.

A sandbox in `proxy` mode has a network namespace of its own, with nothing in it but its loopback. The worker runs
this proxy (threads of the worker, no process) on a unix socket that is bound into the sandbox, where
`swarm/forward.py` listens on 127.0.0.1:EGRESS_PORT and pipes every connection to it; the CLI is told so by
HTTPS_PROXY and the like. The proxy lets a CONNECT through only to a host:port on the vendor's allow-list, and never
to an address that is not public (loopback, private, link-local, ...) unless the list names that very address: a
name is resolved, each address checked, and the connection made to a checked address, so a name that resolves to
the swarm's Redis (a DNS-rebinding or hosts-file trick) gets nowhere. Plain-HTTP proxy requests are refused. Every
decision goes to the run's egress log, next to the agent's log.
"""

from __future__ import annotations

import contextlib
import fnmatch
import ipaddress
import logging
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from swarm.errors import SwarmError
from swarm.forward import pipe

log = logging.getLogger(__name__)

EGRESS_SOCKET = "/run/swarm/egress.sock"
"""Where the proxy's socket is inside the sandbox."""
EGRESS_PORT = 3128
"""The port the forwarder listens on, on the sandbox's own loopback."""
FORWARDER = Path(__file__).resolve().with_name("forward.py")
HEAD_LIMIT = 16 * 1024
HEAD_TIMEOUT = 30.0
CONNECT_TIMEOUT = 10.0
MAX_SOCKETS = 512
"""Open sockets (both ends of each tunnel) one proxy keeps at most: an agent cannot exhaust the worker's files."""

DEFAULT_ALLOW: dict[str, tuple[str, ...]] = {
    # The API, and the OAuth token refresh of a Claude login (the adapter turns telemetry and error reports off).
    "claude": ("api.anthropic.com:443", "platform.claude.com:443", "claude.ai:443"),
    # The API (key login), the ChatGPT-login backend and its token refresh.
    "codex": ("api.openai.com:443", "chatgpt.com:443", "auth.openai.com:443"),
    # The API (key login), Code Assist (Google login) with its token refresh and user info, and Vertex AI.
    "gemini": (
        "generativelanguage.googleapis.com:443",
        "cloudcode-pa.googleapis.com:443",
        "oauth2.googleapis.com:443",
        "www.googleapis.com:443",
        "aiplatform.googleapis.com:443",
        "*-aiplatform.googleapis.com:443",
    ),
}
"""What each vendor CLI may reach in `proxy` mode when its table sets no `allow_hosts`."""


def split_target(target: str) -> tuple[str, int]:
    """(host, port) of `host:port` or `[v6]:port`, the host lower-cased; ValueError when it is not one."""
    host, sep, port = target.strip().rpartition(":")
    host = host.strip("[]").lower()
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{target!r} is not host:port (e.g. api.example.com:443)")
    return host, int(port)


def check_entries(entries: Sequence[str]) -> list[str]:
    """The allow-list entries, each checked to be `host:port` (the host may hold * wildcards)."""
    for entry in entries:
        split_target(entry)
    return list(entries)


def _public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def _literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


@dataclass(frozen=True)
class Policy:
    """Which destinations one run may reach: host:port entries, `*` matching within a host name."""

    allow: tuple[str, ...]

    def listed(self, host: str, port: int) -> bool:
        return any(p == port and fnmatch.fnmatchcase(host, h) for h, p in map(split_target, self.allow))

    def named(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int) -> bool:
        """Whether an entry names this very address (not a name or a pattern that led to it)."""
        return any(p == port and _literal(h) == ip for h, p in map(split_target, self.allow))

    def addresses(self, host: str, port: int) -> list[str]:
        """The addresses to connect to for host:port; raises Refused saying why there are none."""
        if not self.listed(host, port):
            raise Refused(f"CONNECT {host}:{port}: not on the vendor's allow_hosts")
        literal = _literal(host)
        found = [literal] if literal is not None else self._resolve(host, port)
        ok = [ip for ip in found if _public(ip) or self.named(ip, port)]
        if not ok:
            shown = ", ".join(sorted({str(ip) for ip in found}))
            raise Refused(f"CONNECT {host}:{port}: {shown} is not a public address (allow_hosts must name it itself)")
        return [str(ip) for ip in ok]

    @staticmethod
    def _resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise OSError(f"{host}:{port} does not resolve ({exc})") from None
        return list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos))


class Refused(SwarmError):
    """The egress proxy refused a destination; the message says which and why."""


@dataclass
class Proxy:
    """An allow-listing CONNECT proxy on a unix socket, run by threads of this process until `stop`."""

    policy: Policy
    socket_path: Path
    log_path: Path
    refused: list[str] = field(default_factory=list)
    """host:port of every destination refused, in order."""
    unreachable: list[str] = field(default_factory=list)
    """host:port of every allowed destination that could not be resolved or connected to."""
    _open: set[socket.socket] = field(default_factory=set)
    _pending: dict[int, tuple[str, float]] = field(default_factory=dict)
    """The CONNECTs still resolving or connecting upstream (by thread): target and when it was asked."""
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _listener: socket.socket | None = None
    _stopping: bool = False

    def start(self) -> Proxy:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.socket_path))
        listener.listen(128)
        self._listener = listener
        self._spawn(self._accept, "egress-accept")
        return self

    def stop(self) -> None:
        """Close the socket and every connection, and wait (5 s at most) for every thread of the proxy to end.

        A CONNECT still waiting on the resolver or the upstream host counts as one that could not be reached: a
        resolver that never answers must not leave the run's end silent on where the agent was going."""
        now = time.monotonic()
        with self._lock:
            self._stopping = True
            for s in [*self._open, *([self._listener] if self._listener else [])]:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self._open.clear()
            pending, self._pending = list(self._pending.values()), {}
            self.unreachable += [target for target, _ in pending]
        for target, asked in pending:
            self._note(f"FAILED CONNECT {target}: no answer {now - asked:.0f}s after it was asked, when the run ended")
        deadline = now + 5
        for thread in list(self._threads):
            thread.join(timeout=max(0.0, deadline - time.monotonic()))  # a thread in getaddrinfo cannot be stopped
        self.socket_path.unlink(missing_ok=True)

    def _spawn(self, target: object, name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)  # type: ignore[arg-type]
        self._threads = [t for t in self._threads if t.is_alive()]  # a run of hours opens many tunnels
        self._threads.append(thread)
        thread.start()

    def _track(self, s: socket.socket) -> bool:
        with self._lock:
            if self._stopping or len(self._open) >= MAX_SOCKETS:
                s.close()
                return False
            self._open.add(s)
            return True

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._track(client):
                self._spawn(self._serve, "egress-conn", client)

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            upstream = self._tunnel(client)
            if upstream is not None and self._track(upstream):
                pipe(client, upstream)
        finally:
            for s in (client, upstream):
                if s is not None:
                    s.close()
                    with self._lock:
                        self._open.discard(s)

    def _tunnel(self, client: socket.socket) -> socket.socket | None:
        """The upstream connection of the client's CONNECT, answered; None when it was refused or failed."""
        target, me = "?", threading.get_ident()
        try:
            head, rest = _read_head(client)
            target = _connect_target(head)
            with self._lock:
                self._pending[me] = (target, time.monotonic())
            upstream = self._open_upstream(target)
        except Refused as exc:
            self._note(f"REFUSED {exc}")
            _reply(client, "403 Forbidden", f"swarm egress proxy: refused {exc}\n")
            return None
        except OSError as exc:
            with self._lock:
                if self._pending.pop(me, None) is None and self._stopping:
                    return None  # `stop` has said it could not be reached
                self.unreachable.append(target)
            # No 502: the CLIs read a proxy's 5xx as the vendor's server error; a closed tunnel is what a failed
            # connection looks like to them, and the egress log says why.
            self._note(f"FAILED {exc}")
            return None
        finally:
            with self._lock:
                self._pending.pop(me, None)
        try:
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if rest:
                upstream.sendall(rest)
        except OSError:
            upstream.close()
            return None
        return upstream

    def _open_upstream(self, target: str) -> socket.socket:
        try:
            host, port = split_target(target)
        except ValueError as exc:
            raise Refused(f"CONNECT {exc}") from None
        try:
            addresses = self.policy.addresses(host, port)
        except Refused:
            with self._lock:
                self.refused.append(f"{host}:{port}")
            raise
        except OSError as exc:
            raise OSError(f"CONNECT {exc}") from None
        last = OSError(f"CONNECT {host}:{port}: no address")
        for address in addresses:  # only checked addresses: never a second lookup the resolver could answer anew
            try:
                upstream = socket.create_connection((address, port), timeout=CONNECT_TIMEOUT)
            except OSError as exc:
                last = OSError(f"CONNECT {host}:{port} via {address}: {exc}")
                continue
            upstream.settimeout(None)
            self._note(f"allowed CONNECT {host}:{port} via {address}")
            return upstream
        raise last

    def _note(self, line: str) -> None:
        if not line.startswith("allowed"):
            log.warning("egress proxy for %s: %s", self.log_path.parent, line)
        with self._lock, open(self.log_path, "a", encoding="utf-8") as out:
            out.write(f"{time.strftime('%H:%M:%S')} {line}\n")


def _read_head(client: socket.socket) -> tuple[bytes, bytes]:
    """The request head (up to the blank line) and whatever bytes came after it."""
    client.settimeout(HEAD_TIMEOUT)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = client.recv(4096)
        if not chunk or len(data) > HEAD_LIMIT:
            raise Refused("a request without a complete head")
        data += chunk
    client.settimeout(None)
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _connect_target(head: bytes) -> str:
    method, _, rest = head.split(b"\r\n", 1)[0].decode("latin-1").partition(" ")
    target = rest.split(" ")[0]
    if method != "CONNECT":
        raise Refused(f"{method} {target}: only CONNECT (HTTPS through a tunnel) is let through")
    return target


def _reply(client: socket.socket, status: str, body: str) -> None:
    data = body.encode()
    head = f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    with contextlib.suppress(OSError):
        client.sendall(head.encode() + data)


@contextlib.contextmanager
def serving(allow: Sequence[str], log_path: Path) -> Iterator[Proxy]:
    """A proxy for one run, on a socket in a fresh private folder (short: a socket path is at most 107 bytes),
    stopped and its folder removed when the block ends."""
    folder = Path(tempfile.mkdtemp(prefix="swarm-egress-"))
    proxy = Proxy(Policy(tuple(allow)), folder / "proxy.sock", log_path)
    try:
        proxy.start()
        yield proxy
    finally:
        proxy.stop()
        shutil.rmtree(folder, ignore_errors=True)


def proxy_env(port: int = EGRESS_PORT) -> dict[str, str]:
    """What tells a CLI inside the sandbox to use the forwarder (curl, Python, Rust's reqwest, Node's undici
    ProxyAgent read these names; Node 24's own fetch with NODE_USE_ENV_PROXY)."""
    url = f"http://127.0.0.1:{port}"
    names = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
    return {**dict.fromkeys(names, url), "NO_PROXY": "", "no_proxy": "", "NODE_USE_ENV_PROXY": "1"}


def forwarder_argv(python: str, argv: Sequence[str]) -> list[str]:
    """argv run behind the forwarder, inside the sandbox."""
    return [python, "-I", str(FORWARDER), EGRESS_SOCKET, str(EGRESS_PORT), "--", *argv]
