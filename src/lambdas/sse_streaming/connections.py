"""The stream connection of one execution environment (FR-008).

Classic Lambda runs one invocation per execution environment and serves more concurrent
requests with more environments, up to the function's reserved concurrency (past it, the
Function URL answers 429): https://docs.aws.amazon.com/lambda/latest/dg/lambda-concurrency.html.
So an environment holds at most one stream, and there is no per-environment limit to enforce:
the function-wide cap is reserved concurrency, counted by Lambda's own `Throttles` metric.
The connection id is the invocation's request id: the X-Ray trace stays the correlation id (FR-010).

Example:
    >>> lease = Lease.acquire("req-1")
    >>> lease.current_count, lease.max_connections
    (1, 1)
    >>> lease.release(), lease.release()
    (0, 0)
"""

from __future__ import annotations

from dataclasses import dataclass

STREAMS_PER_ENVIRONMENT = 1


@dataclass
class Lease:
    """This environment's stream; `release()` is idempotent and returns the count after it."""

    connection_id: str
    current_count: int = 1
    max_connections: int = STREAMS_PER_ENVIRONMENT

    @classmethod
    def acquire(cls, connection_id: str) -> Lease:
        return cls(connection_id)

    def release(self) -> int:
        self.current_count = 0
        return self.current_count
