"""A TCP forwarder that a test can cut like a pulled cable (no library does this in-process).

Fault tests put it between a client and a real server (the MLflow tracking server) to make the
path fail at a chosen point of the protocol.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from collections.abc import Callable

from tests.integration.harness import free_port


class CuttableProxy:
    """A TCP forwarder in front of a real server that can be cut like a pulled cable.

    Cutting closes the listening socket (new connections are refused) and every open
    connection (requests in flight fail, pooled keep-alive connections die). ``cut_when``
    cuts once, by itself, as soon as a client sends bytes it matches, before they are
    forwarded, so the fault lands at a chosen point of the protocol whatever the machine's
    speed.
    """

    def __init__(self, target_port: int, cut_when: Callable[[bytes], bool] | None = None) -> None:
        self.port = free_port()
        self.target_port = target_port
        self.cut_when = cut_when
        self.cut_at: str | None = None  # the request line that triggered the cut
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def is_cut(self) -> bool:
        return self._listener is None

    def start(self) -> None:
        """Listen (again) on the same port."""
        listener = socket.create_server(("127.0.0.1", self.port))
        with self._lock:
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            doomed, self._open = self._open, set()
        for sock in ([listener] if listener else []) + list(doomed):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the threads blocked on it
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                ready, _, _ = select.select([listener], [], [], 0.2)
                if not ready:
                    if self._listener is not listener:
                        return
                    continue
                downstream, _ = listener.accept()
            except (OSError, ValueError):  # closed by cut()
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
            except OSError:
                downstream.close()
                continue
            with self._lock:
                if self._listener is not listener:
                    downstream.close()
                    upstream.close()
                    return
                self._open.update((downstream, upstream))
            threading.Thread(target=self._pipe, args=(downstream, upstream), daemon=True).start()

    def _pipe(self, downstream: socket.socket, upstream: socket.socket) -> None:
        peers = {downstream: upstream, upstream: downstream}
        try:
            while True:
                readable, _, _ = select.select(list(peers), [], [], 60)
                if not readable:
                    return
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is downstream and self.cut_when and self.cut_when(data):
                        # One shot: once restored, the path stays up.
                        self.cut_when = None
                        self.cut_at = data.split(b"\r\n", 1)[0].decode(errors="replace")
                        self.cut()
                        return
                    peers[sock].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            for sock in peers:
                with self._lock:
                    self._open.discard(sock)
                sock.close()
