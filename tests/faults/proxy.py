"""A test-only TCP proxy on loopback whose link can be cut and restored: a network partition in a process."""

from __future__ import annotations

import select
import socket
import threading

from swarm.embedded import free_port


class Proxy:
    """Forwards 127.0.0.1:<port> to a target port; `cut()` drops every connection and refuses new ones."""

    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.target = target_port
        self.port = free_port()
        self.up = threading.Event()
        self.up.set()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self.host = host
        self._server = socket.create_server((host, self.port))
        self._server.settimeout(0.1)
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, db: int = 0) -> str:
        return f"redis://{self.host}:{self.port}/{db}"

    def cut(self) -> None:
        self.up.clear()
        with self._lock:
            for a, b in self._pairs:
                for s in (a, b):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    s.close()
            self._pairs.clear()

    def restore(self) -> None:
        self.up.set()

    def close(self) -> None:
        self._stop.set()
        self.cut()
        self._server.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except (TimeoutError, OSError):
                continue
            if not self.up.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=2)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while self.up.is_set():
                ready, _, _ = select.select([a, b], [], [], 0.2)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    (b if s is a else a).sendall(data)
        except (OSError, ValueError):
            return
        finally:  # one side closed (Redis restarted, say): close the other, as a real connection would end
            self._drop(a, b)

    def _drop(self, a: socket.socket, b: socket.socket) -> None:
        with self._lock:
            if (a, b) in self._pairs:
                self._pairs.remove((a, b))
        for s in (a, b):
            try:
                s.close()
            except OSError:
                pass
