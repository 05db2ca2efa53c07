"""One address in front of several web processes, as nginx or HAProxy would be: each new
connection goes to the first backend that accepts it (a dead one is skipped), and its bytes
are copied both ways. Enough for tests of "a web process dies, its pages reconnect behind the
same address", and, with `stall()`, of "the server stops answering" (bytes held both ways until
`flow()`)."""
from __future__ import annotations

import socket
import threading

from tests.support.helpers import free_port


class TcpProxy:
    def __init__(self, backends: list[int]):
        self.backends = list(backends)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._flowing = threading.Event()
        self._flowing.set()
        threading.Thread(target=self._accept, name="tcp-proxy", daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = None
            for port in self.backends:
                try:
                    upstream = socket.create_connection(("127.0.0.1", port), timeout=2)
                    upstream.settimeout(None)
                    break
                except OSError:
                    continue
            if upstream is None:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, target), daemon=True).start()

    def stall(self) -> None:
        """The server seems to hang: connections are still accepted, but no byte goes through."""
        self._flowing.clear()

    def flow(self) -> None:
        self._flowing.set()

    def _pipe(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                self._flowing.wait()
                target.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, target):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                end.close()

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                try:
                    sock.close()
                except OSError:
                    pass
