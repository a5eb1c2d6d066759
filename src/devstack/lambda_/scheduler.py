"""EventBridge schedules: each scheduled function invoked asynchronously every `interval` seconds.

EventBridge invokes a Lambda target asynchronously (Event invocation type), so a failed run is
retried by Lambda, and the schedule keeps firing whatever one run did:
https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-run-lambda-schedule.html.

Example (not run: starts runtime processes):
    >>> scheduler = Scheduler(service, {"ingestion": 60.0}).start()   # doctest: +SKIP
    >>> scheduler.fire("metrics")                                     # doctest: +SKIP
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from devstack.lambda_.events import scheduled_event
from devstack.lambda_.invocation import Invocation
from devstack.lambda_.lambda_service import FunctionUnavailableError, LambdaService
from devstack.lambda_.response_stream import FunctionError


class Scheduler:
    """EventBridge schedules: each scheduled function invoked (Event type) every `interval` seconds."""

    def __init__(self, service: LambdaService, intervals_s: Mapping[str, float]):
        self.service = service
        self.intervals_s = {key: value for key, value in intervals_s.items() if value > 0}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def fire(self, key: str) -> tuple[Any, Invocation]:
        """One scheduled invocation now, run to its end (retries included)."""
        return self.service.invoke_event(key, scheduled_event(self.service.stack.function(key)))

    def start(self) -> Scheduler:
        for key, interval in self.intervals_s.items():
            if not self.service.available.get(key):
                continue
            thread = threading.Thread(target=self._run, args=(key, interval), name=f"schedule-{key}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _run(self, key: str, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.fire(key)
            except (FunctionError, FunctionUnavailableError) as error:
                if self._stop.is_set():
                    return  # the stack went down under this run
                # EventBridge keeps its schedule whatever one run did: say what happened, fire again later.
                self.service.console.event("schedule", key, outcome=type(error).__name__, detail=str(error)[:200])

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=1)
