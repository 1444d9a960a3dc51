"""Servers that fail the way a busy or broken Airflow API server does, on free localhost
ports: one that accepts connections and never answers, one that answers every request
with an error."""
from __future__ import annotations

import http.server
import socket
import threading
from contextlib import contextmanager
from typing import Iterator

from tests.helpers import free_port


class Silent:
    """Accepts connections and never answers; `accepted` is set once one came in."""

    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.accepted = threading.Event()
        self.connections: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:  # closed
                return
            self.connections.append(conn)
            self.accepted.set()

    def hang_up(self) -> None:
        """Close every connection held (their clients see the connection end) and stop listening."""
        self._listener.close()
        for conn in self.connections:
            conn.close()


@contextmanager
def silent_server() -> Iterator[Silent]:
    server = Silent()
    try:
        yield server
    finally:
        server.hang_up()


@contextmanager
def failing_server(status: int = 500) -> Iterator[str]:
    """The URL of a server answering `status` to every request."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def _fail(self) -> None:
            body = b'{"detail": "Internal Server Error"}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PATCH = _fail

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
