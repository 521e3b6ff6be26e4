"""The agent's end of its way out: run INSIDE a proxy-mode sandbox, before the agent's CLI, as a plain script.

`python -I forward.py SOCKET PORT -- CLI ARGS...` listens on 127.0.0.1:PORT (the only network a proxy-mode sandbox
has is its own loopback), forks a child that pipes each connection to the unix socket SOCKET (the worker's egress
proxy, bound into the sandbox), and execs the CLI in its own place, so the CLI is the sandbox's main process and
the forwarder dies with the sandbox. Standard library only: the swarm's package is not importable in the sandbox.
"""

from __future__ import annotations

import os
import selectors
import socket
import sys
import threading

CHUNK = 64 * 1024
NOT_STARTED = 127
"""Exit code when the CLI cannot be started (as a shell's "command not found")."""


def pipe(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways until both sides have finished sending (a half-close is passed on), then close both."""
    sel = selectors.DefaultSelector()
    peer = {a: b, b: a}
    for s in (a, b):
        sel.register(s, selectors.EVENT_READ)
    try:
        while sel.get_map():
            for key, _ in sel.select():
                src: socket.socket = key.fileobj  # type: ignore[assignment]
                try:
                    data = src.recv(CHUNK)
                except OSError:
                    return
                if data:
                    peer[src].sendall(data)
                    continue
                sel.unregister(src)
                try:
                    peer[src].shutdown(socket.SHUT_WR)
                except OSError:
                    return
    except OSError:
        return
    finally:
        sel.close()
        a.close()
        b.close()


def _connection(client: socket.socket, socket_path: str) -> None:
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        upstream.connect(socket_path)
    except OSError as exc:
        print(f"swarm egress forwarder: cannot reach the proxy at {socket_path}: {exc}", file=sys.stderr)
        upstream.close()
        client.close()
        return
    pipe(client, upstream)


def serve(listener: socket.socket, socket_path: str) -> None:
    """Accept forever, one thread per connection."""
    while True:
        client, _ = listener.accept()
        threading.Thread(target=_connection, args=(client, socket_path), daemon=True).start()


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--":
        print("usage: forward.py SOCKET PORT -- CLI ARGS...", file=sys.stderr)
        return 2
    socket_path, port, command = argv[0], int(argv[1]), argv[3:]
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(128)  # listening before the CLI starts: its first connection cannot race the forwarder
    if os.fork() == 0:
        try:
            serve(listener, socket_path)
        finally:
            os._exit(1)
    listener.close()
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        print(f"swarm: could not start {command[0]!r}: {exc}", file=sys.stderr)
    return NOT_STARTED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
