"""One lifecycle for devstack's small HTTP fakes: a ThreadingHTTPServer served from a daemon thread."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LoopbackServer:
    """Serve ``handler`` on ``host:port`` (port 0: a free one) until :meth:`stop`.

    Example::

        server = LoopbackServer("127.0.0.1", 0, Handler, name="fake-news").start()
        requests.get(f"{server.url}/health")
        server.stop()
    """

    def __init__(self, host: str, port: int, handler: type[BaseHTTPRequestHandler], name: str):
        self._httpd = ThreadingHTTPServer((host, port), handler)
        self._httpd.daemon_threads = True
        # A short poll interval: stop() (shutdown) returns within it, not within the default 0.5 s.
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=name, daemon=True)

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"
