"""The stack map (`infrastructure/terraform/stack.json`) as the devstack uses it.

Terraform reads the same file, so function handlers, memory, timeouts, env and table
definitions cannot drift between the local stack and AWS.

Example:
    >>> spec = load_stack().function("analysis")
    >>> spec.handler
    'lambdas.analysis.handler.lambda_handler'
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
STACK_FILE = REPO_ROOT / "infrastructure" / "terraform" / "stack.json"
SRC_ROOT = REPO_ROOT / "src"
LOCAL_ENVIRONMENT = "local"


@dataclass(frozen=True)
class FunctionSpec:
    key: str
    handler: str
    package: str
    memory_mb: int
    timeout_s: int
    trigger: dict[str, Any]
    env: dict[str, str]
    dead_letter_queue: str | None
    # Lambda's reserved concurrency (None: unreserved, the account's pool); Terraform's
    # `reserved_concurrency` variable overrides it per environment.
    reserved_concurrency: int | None = None

    @property
    def name(self) -> str:
        return physical_name(self.key)

    @property
    def service_name(self) -> str:
        """POWERTOOLS_SERVICE_NAME (and, for SSE, OTEL_SERVICE_NAME): one service-map node per function,
        the function's physical name as Terraform sets it (modules/lambda_functions: service_names =
        function_names), so X-Ray groups that filter on `service("sentiment-analyzer-<env>-<key>")` match."""
        return self.name


def physical_name(key: str) -> str:
    """Resource names follow Terraform's `sentiment-analyzer-<env>-<key>`."""
    return f"sentiment-analyzer-{LOCAL_ENVIRONMENT}-{key}"


@dataclass(frozen=True)
class Stack:
    raw: dict[str, Any]

    @property
    def functions(self) -> dict[str, FunctionSpec]:
        return {
            key: FunctionSpec(
                key=key,
                handler=spec["handler"],
                package=spec["package"],
                memory_mb=int(spec["memory_mb"]),
                timeout_s=int(spec["timeout_s"]),
                trigger=spec["trigger"],
                env=dict(spec["env"]),
                dead_letter_queue=spec.get("dead_letter_queue"),
                reserved_concurrency=spec.get("reserved_concurrency"),
            )
            for key, spec in self.raw["functions"].items()
        }

    def function(self, key: str) -> FunctionSpec:
        return self.functions[key]

    @property
    def tables(self) -> dict[str, dict[str, Any]]:
        return dict(self.raw["tables"])

    @property
    def topics(self) -> dict[str, dict[str, Any]]:
        return dict(self.raw["topics"])

    @property
    def queues(self) -> dict[str, dict[str, Any]]:
        return dict(self.raw["queues"])

    @property
    def secrets(self) -> dict[str, dict[str, Any]]:
        return dict(self.raw["secrets"])


@cache
def load_stack(path: Path = STACK_FILE) -> Stack:
    return Stack(json.loads(path.read_text()))
