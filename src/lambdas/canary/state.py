"""What the canary remembers between runs (state table, `pk="canary"`, `sk="state"`).

- the loss window: retrieved/submitted probe traces of the last `LOSS_WINDOW_RUNS` measured runs
  (FR-036: loss is judged in aggregate, one slow trace is not data loss);
- the alerting state: consecutive failed runs, whether this outage was paged, since when (FR-020).

Writes are conditional on the version read, so two overlapping runs cannot silently undo each
other: the loser's write fails and its run reports `canary_state` as failed.

Example (not run: needs a Lambda context and the function's AWS resources):
    >>> store = StateStore(settings.state_table, policy)        # doctest: +SKIP
    >>> state = store.load(); store.save(state.advanced(...))   # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import Any

from lambdas.canary import clients
from lambdas.canary.errors import RetryPolicy, call_aws
from lib.tracing.powertools import annotate, lambda_tracer

tracer = lambda_tracer()

STATE_KEY = {"pk": {"S": "canary"}, "sk": {"S": "state"}}
LOSS_WINDOW_RUNS = 3  # 15 minutes of 5-minute runs


@dataclass(frozen=True)
class WindowEntry:
    run_id: str
    submitted: int
    retrieved: int


@dataclass(frozen=True)
class CanaryState:
    consecutive_failures: int = 0
    paged: bool = False
    outage_since: str | None = None
    window: tuple[WindowEntry, ...] = ()
    last_health: str | None = None
    last_run_id: str | None = None
    version: int = 0

    def with_measurement(self, entry: WindowEntry | None) -> CanaryState:
        """The window with this run's measurement appended (oldest dropped); unchanged without one."""
        if entry is None:
            return self
        return replace(self, window=(*self.window, entry)[-LOSS_WINDOW_RUNS:])

    @property
    def loss_ratio(self) -> float | None:
        """Retrieved / submitted over the window (None before the first measurement)."""
        submitted = sum(entry.submitted for entry in self.window)
        return sum(entry.retrieved for entry in self.window) / submitted if submitted else None

    def to_item(self, updated_at: dt.datetime) -> dict[str, Any]:
        return {
            **STATE_KEY,
            "version": {"N": str(self.version)},
            "consecutive_failures": {"N": str(self.consecutive_failures)},
            "paged": {"BOOL": self.paged},
            "outage_since": {"S": self.outage_since} if self.outage_since else {"NULL": True},
            "last_health": {"S": self.last_health} if self.last_health else {"NULL": True},
            "last_run_id": {"S": self.last_run_id} if self.last_run_id else {"NULL": True},
            "updated_at": {"S": updated_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")},
            "window": {"L": [{"M": {"run_id": {"S": e.run_id}, "submitted": {"N": str(e.submitted)},
                                    "retrieved": {"N": str(e.retrieved)}}} for e in self.window]},
        }

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> CanaryState:
        def text(name: str) -> str | None:
            return str(item[name]["S"]) if "S" in item.get(name, {}) else None

        return cls(
            consecutive_failures=int(item["consecutive_failures"]["N"]),
            paged=bool(item["paged"]["BOOL"]),
            outage_since=text("outage_since"),
            window=tuple(WindowEntry(str(entry["M"]["run_id"]["S"]), int(entry["M"]["submitted"]["N"]),
                                     int(entry["M"]["retrieved"]["N"])) for entry in item["window"]["L"]),
            last_health=text("last_health"),
            last_run_id=text("last_run_id"),
            version=int(item["version"]["N"]),
        )


@dataclass
class StateStore:
    table: str
    policy: RetryPolicy
    loaded_version: int | None = field(default=None, init=False)

    @tracer.capture_method(capture_response=False)
    def load(self) -> CanaryState:
        """The stored state, or a fresh one on the first run ever. AWS errors raise AwsCallError."""
        response = call_aws("dynamodb:GetItem", lambda: clients.dynamodb().get_item(
            TableName=self.table, Key=STATE_KEY, ConsistentRead=True), self.policy)
        item = response.get("Item")
        state = CanaryState.from_item(item) if item else CanaryState()
        self.loaded_version = state.version if item else None
        annotate(tracer, canary_consecutive_failures=state.consecutive_failures, canary_paged=state.paged)
        return state

    @tracer.capture_method(capture_response=False)
    def save(self, state: CanaryState, now: dt.datetime) -> CanaryState:
        """Write `state` as the next version; fails (ConditionalCheckFailed) if another run wrote in between.

        Without a successful `load` this run, the write only succeeds when no state exists yet.
        """
        saved = replace(state, version=(self.loaded_version or 0) + 1)
        if self.loaded_version is None:
            condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        else:
            condition = {"ConditionExpression": "version = :expected",
                         "ExpressionAttributeValues": {":expected": {"N": str(self.loaded_version)}}}
        call_aws("dynamodb:PutItem", lambda: clients.dynamodb().put_item(
            TableName=self.table, Item=saved.to_item(now), **condition), self.policy)
        self.loaded_version = saved.version
        return saved
