"""A local X-Ray daemon: the SDK's UDP datagrams in, batched `PutTraceSegments` out (via SegmentSink).

Each datagram is `{"format":"json","version":1}\\n<document>`. The receive loop does nothing
but `recvfrom` and append, on a socket with a large receive buffer: a naive listener dropped
40 % of a burst here. Garbage is counted and logged, never fatal.

Example (not run: starts a UDP server and needs a segment sink):
    >>> daemon = XRayDaemon(sink).start()           # doctest: +SKIP
    >>> os.environ["AWS_XRAY_DAEMON_ADDRESS"] = daemon.address   # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass

from devstack.xray.segment_sink import SegmentSink

log = logging.getLogger("devstack.xray.daemon")

# The protocol header is a JSON object, `{"format": "json", "version": 1}` in AWS's own example
# (https://docs.aws.amazon.com/xray/latest/devguide/xray-api-sendingdata.html): read as JSON, so any
# spacing of it is accepted, as the SDKs differ in theirs.
HEADER = {"format": "json", "version": 1}
RECEIVE_BUFFER_BYTES = 16 * 1024 * 1024
MAX_DATAGRAM = 65535
BARRIER = b"devstack-barrier:"  # wait_idle's marker; never a valid X-Ray datagram (no protocol header)


@dataclass
class DaemonStats:
    datagrams: int = 0
    malformed: int = 0


class XRayDaemon:
    def __init__(self, sink: SegmentSink, host: str = "127.0.0.1", port: int = 0):
        self._sink = sink
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
        if self._socket.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) < RECEIVE_BUFFER_BYTES:
            # SO_RCVBUF is capped by net.core.rmem_max; root may force past it.
            force = getattr(socket, "SO_RCVBUFFORCE", None)
            if force is not None:
                try:
                    self._socket.setsockopt(socket.SOL_SOCKET, force, RECEIVE_BUFFER_BYTES)
                except PermissionError:
                    log.warning("receive buffer capped at %d bytes (not root)",
                                self._socket.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
        self._socket.bind((host, port))
        self._datagrams: deque[bytes] = deque()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._receiver = threading.Thread(target=self._receive, name="xray-daemon-recv", daemon=True)
        self._parser = threading.Thread(target=self._parse, name="xray-daemon-parse", daemon=True)
        self._barriers: dict[int, threading.Event] = {}
        self._barrier_lock = threading.Lock()
        self._barrier_sequence = 0
        self.stats = DaemonStats()

    @property
    def address(self) -> str:
        host, port = self._socket.getsockname()
        return f"{host}:{port}"

    @property
    def port(self) -> int:
        return int(self._socket.getsockname()[1])

    def start(self) -> XRayDaemon:
        self._receiver.start()
        self._parser.start()
        return self

    def stop(self) -> None:
        self.wait_idle()
        self._stopped.set()
        self._wake.set()
        self._socket.close()
        self._receiver.join(timeout=2)
        self._parser.join(timeout=2)

    def wait_idle(self, timeout_s: float = 10.0) -> bool:
        """True once every datagram sent to the daemon before this call is parsed and stored.

        A barrier datagram is sent through the same socket buffer: on loopback, `sendto` enqueues
        at once, so when the parser reaches the barrier every earlier datagram has been handled,
        even those still in the kernel buffer when this was called.
        """
        end = time.monotonic() + timeout_s
        with self._barrier_lock:
            self._barrier_sequence += 1
            token = self._barrier_sequence
        reached = threading.Event()
        self._barriers[token] = reached
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.sendto(BARRIER + str(token).encode(), self._socket.getsockname())
        if not reached.wait(timeout_s):
            self._barriers.pop(token, None)
            return False
        return self._sink.wait_idle(max(0.0, end - time.monotonic()))

    def _receive(self) -> None:
        recv = self._socket.recvfrom
        append = self._datagrams.append
        while not self._stopped.is_set():
            try:
                data, _ = recv(MAX_DATAGRAM)
            except OSError:
                return  # socket closed by stop()
            append(data)
            self._wake.set()

    def _parse(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait(0.1)
            self._wake.clear()
            while self._datagrams:
                self._handle(self._datagrams.popleft())

    def _handle(self, data: bytes) -> None:
        if data.startswith(BARRIER):
            reached = self._barriers.pop(int(data[len(BARRIER):]), None)
            if reached is not None:
                reached.set()
            return
        self.stats.datagrams += 1
        header, sep, body = data.partition(b"\n")
        try:
            protocol = json.loads(header) if sep else None
        except ValueError:
            protocol = None
        if protocol != HEADER:
            self._malformed("missing or wrong protocol header", data)
            return
        try:
            text = body.decode("utf-8")
            json.loads(text)
        except (UnicodeDecodeError, ValueError):
            self._malformed("body is not a JSON document", data)
            return
        self._sink.submit(text)

    def _malformed(self, reason: str, data: bytes) -> None:
        self.stats.malformed += 1
        log.warning("malformed datagram (%s): %r", reason, data[:80])
