"""Stream connections of one execution environment, bounded by SSE_MAX_CONNECTIONS.

One environment serves one invocation at a time in classic Lambda and up to
`AWS_LAMBDA_MAX_CONCURRENCY` at once under multi-concurrency (the bootstrap runs that many
workers): the count is per environment either way. The connection id is the invocation's
request id: the X-Ray trace stays the correlation id (FR-010).

Example:
    >>> registry = ConnectionRegistry()
    >>> lease = registry.acquire("req-1", max_connections=1)
    >>> lease.current_count, registry.count
    (1, 1)
    >>> lease.release(), lease.release()
    (0, 0)
"""

from __future__ import annotations

import threading


class ConnectionLimitError(RuntimeError):
    """The environment already serves its maximum number of streams."""

    def __init__(self, current_count: int, max_connections: int):
        super().__init__(f"{current_count} of {max_connections} stream connections in use")
        self.current_count = current_count
        self.max_connections = max_connections


class Lease:
    """One acquired connection slot; `release()` is idempotent and returns the count after it."""

    def __init__(self, registry: ConnectionRegistry, connection_id: str, current_count: int, max_connections: int):
        self._registry = registry
        self.connection_id = connection_id
        self.current_count = current_count
        self.max_connections = max_connections
        self.released = False

    def release(self) -> int:
        return self._registry._release(self)


class ConnectionRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active: set[str] = set()

    @property
    def count(self) -> int:
        with self._lock:
            return len(self._active)

    def acquire(self, connection_id: str, max_connections: int) -> Lease:
        with self._lock:
            if len(self._active) >= max_connections:
                raise ConnectionLimitError(len(self._active), max_connections)
            self._active.add(connection_id)
            return Lease(self, connection_id, len(self._active), max_connections)

    def _release(self, lease: Lease) -> int:
        with self._lock:
            if not lease.released:
                lease.released = True
                self._active.discard(lease.connection_id)
            return len(self._active)
