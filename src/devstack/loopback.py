"""One lifecycle for every small server of the devstack: bound on loopback, served from a daemon
thread, stopped (idempotently) by `stop()`.

The fakes, the CloudFront edge, the Runtime API endpoints, the OTLP receiver and the gated moto
server all run through it; only what they serve differs.

Example:
    >>> from http.server import BaseHTTPRequestHandler
    >>> server = LoopbackServer.http("127.0.0.1", 0, BaseHTTPRequestHandler, name="example").start()
    >>> server.url.startswith("http://127.0.0.1:")
    True
    >>> server.stop(); server.stop()   # idempotent
"""

from __future__ import annotations

import errno
import socketserver
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self

POLL_INTERVAL_S = 0.05  # stop() (shutdown) returns within one poll, not within the default 0.5 s


def send_reply(request: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str = "application/json",
               headers: Mapping[str, str] | None = None) -> None:
    """Answer `request` whole: the status, `headers`, Content-Type, Content-Length and `body`.

    Example (inside a handler): `send_reply(self, 200, json.dumps({"ok": True}).encode())`.
    """
    request.send_response(status)
    for name, value in (headers or {}).items():
        request.send_header(name, value)
    request.send_header("Content-Type", content_type)
    request.send_header("Content-Length", str(len(body)))
    request.end_headers()
    request.wfile.write(body)


class PortInUseError(RuntimeError):
    """The server's port is taken (another devstack, or another server)."""


class LoopbackServer:
    """Serve an already bound `server` from a daemon thread named `name` until `stop`."""

    def __init__(self, server: socketserver.BaseServer, name: str):
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": POLL_INTERVAL_S},
                                        name=name, daemon=True)

    @classmethod
    def http(cls, host: str, port: int, handler: type[BaseHTTPRequestHandler], name: str,
             server_class: type[ThreadingHTTPServer] = ThreadingHTTPServer) -> LoopbackServer:
        """A threading HTTP server for `handler` on `host:port` (port 0: a free one); PortInUseError if taken."""
        try:
            server = server_class((host, port), handler)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise PortInUseError(
                    f"{host}:{port} is already in use (another devstack running? stop it, or pick a free port "
                    f"with --port)") from error
            raise
        server.daemon_threads = True
        return cls(server, name)

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Idempotent; safe before `start` (shutdown() would wait for a serve_forever that never ran)."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])  # type: ignore[attr-defined]

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])  # type: ignore[attr-defined]

    @property
    def address(self) -> str:
        """host:port"""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"


class LoopbackService:
    """The lifecycle of a fake served by one LoopbackServer (`self._server`, set by the subclass):
    start, stop, a context manager, its base URL. A subclass with more to end extends `stop` and
    calls `super().stop()` last.

    Example:
        >>> from http.server import BaseHTTPRequestHandler
        >>> class Example(LoopbackService):
        ...     def __init__(self):
        ...         self._server = LoopbackServer.http("127.0.0.1", 0, BaseHTTPRequestHandler, name="example")
        >>> with Example() as example:
        ...     example.base_url.startswith("http://127.0.0.1:")
        True
    """

    _server: LoopbackServer

    def start(self) -> Self:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return self._server.url
