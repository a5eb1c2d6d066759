"""Drift between the code and the infrastructure: what the code emits, reads and writes is what
Terraform (and the contract it is tested against) provisions, alarms and filters on."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.lambda_.invocation import lambda_environment
from devstack.stack import load_stack
from devstack.xray.collector_config import load_indexed_attributes
from lib.metrics import APP_NAMESPACE, CANARY_NAMESPACE, CanaryMetric, Metric
from tests.infra.hcl import contract_metrics, module

REPO = Path(__file__).resolve().parents[2]
LAMBDAS = REPO / "src" / "lambdas"
# Set by Lambda itself (or by the runtime per invocation), never by stack.json.
RUNTIME_ENV = re.compile(r"^(AWS_|_X_AMZN_|LAMBDA_|_HANDLER$|POWERTOOLS_SERVICE_NAME$|OTEL_SERVICE_NAME$)")
ENV_LITERAL = re.compile(r'"([A-Z][A-Z0-9]*_[A-Z0-9_]+)"')
ENV_CONTEXT = re.compile(r"environ|\benv\b|need\(|require_env|_number\(|env_number|names = \(")


@pytest.mark.req("FR-029", "FR-060", "SC-003")
@pytest.mark.parametrize("key", sorted(load_stack().functions))
def test_every_function_in_the_map_has_a_handler_that_imports_with_its_tracer(key: str) -> None:
    function = load_stack().function(key)
    module_name, _, attribute = function.handler.rpartition(".")
    probe = (
        "import importlib, sys\n"
        f"module = importlib.import_module({module_name!r})\n"
        f"assert callable(getattr(module, {attribute!r}))\n"
        "from aws_lambda_powertools import Tracer\n"
        "tracers = [v for v in vars(module).values() if isinstance(v, Tracer)]\n"
        "assert len(tracers) == 1, tracers\n"
        "print(tracers[0].auto_patch)\n"
    )
    # references resolve to placeholder names: importing must not need AWS, only the map's variables
    resolved = {name: value.replace(":", "-") for name, value in function.env.items()}
    env = {**os.environ, **lambda_environment(function, resolved, "127.0.0.1:2000"), "PYTHONPATH": str(REPO / "src")}
    result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == ("False" if function.package == "image" else "True")


@pytest.mark.parametrize("key", sorted(load_stack().functions))
def test_every_env_var_the_code_reads_is_set_for_that_function(key: str) -> None:
    declared = set(load_stack().function(key).env)
    read: set[str] = set()
    for path in (LAMBDAS / key).rglob("*.py"):
        text = path.read_text()
        # a read may span lines (a tuple of names): look at each statement-ish chunk around a context word
        for match in ENV_CONTEXT.finditer(text):
            chunk = text[match.start(): text.find(")", match.end()) + 1]
            read |= set(ENV_LITERAL.findall(chunk))
    unset = {name for name in read - declared if not RUNTIME_ENV.match(name)}
    assert not unset, f"{key} reads {sorted(unset)}, which stack.json does not set for it"


@pytest.mark.req("FR-042", "FR-043", "SC-018", "SC-019")
def test_the_metrics_the_code_emits_are_exactly_the_contracts() -> None:
    contract = contract_metrics()
    app = {name for name, metric in contract.items() if metric.namespace == APP_NAMESPACE}
    canary = {name for name, metric in contract.items() if metric.namespace == CANARY_NAMESPACE}
    assert {metric.value for metric in Metric} == app
    assert {metric.value for metric in CanaryMetric} == canary
    assert {metric.namespace for metric in contract.values()} == {APP_NAMESPACE, CANARY_NAMESPACE}


@pytest.mark.req("FR-034")
def test_every_annotation_an_xray_group_filters_on_is_one_the_code_writes() -> None:
    groups = module("observability").locals["xray_groups"]
    keys = {key for group in groups.values() for key in re.findall(r"annotation\.([A-Za-z0-9_]+)", group["filter"])}
    assert keys, "the groups filter on annotations"
    indexed = load_indexed_attributes()  # what the collector turns into annotations (SSE spans)
    code = "\n".join(path.read_text() for path in LAMBDAS.rglob("*.py"))
    for key in keys:
        assert key in indexed or f'"{key}"' in code, f"no code writes annotation {key!r}"
        assert f'"{key}"' in code, f"annotation {key!r} is indexed but no code sets it"


def test_stack_map_is_valid_json_with_one_entry_per_lambda_directory() -> None:
    stack = json.loads((REPO / "infrastructure" / "terraform" / "stack.json").read_text())
    directories = {path.name for path in LAMBDAS.iterdir() if (path / "handler.py").exists()}
    assert set(stack["functions"]) == directories


# The boto3 calls that need each granted IAM action (TransactWriteItems is checked against the action of
# each entry: Update → UpdateItem, Put → PutItem, Delete → DeleteItem:
# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html). Powertools'
# idempotency persistence layer makes its GetItem / PutItem / UpdateItem / DeleteItem calls itself
# (lambdas/notification/once.py names them), so constructing it counts for those four.
IDEMPOTENCY_LAYER = "DynamoDBPersistenceLayer("
CALLS_FOR_ACTION = {
    "dynamodb:GetItem": ("get_item(", IDEMPOTENCY_LAYER),
    "dynamodb:PutItem": ("put_item(", '{"Put": ', IDEMPOTENCY_LAYER),
    "dynamodb:UpdateItem": ("update_item(", "transact_write_items(", IDEMPOTENCY_LAYER),
    "dynamodb:DeleteItem": ("delete_item(", '{"Delete": ', IDEMPOTENCY_LAYER),
    "dynamodb:Query": (".query(", "query_pages("), "xray:BatchGetTraces": ("batch_get_traces(",),
    "cloudwatch:GetMetricStatistics": ("get_metric_statistics(",),
}
LIBRARY_CALLERS = {"DynamoDBPersistenceLayer": "aws_lambda_powertools.utilities.idempotency.persistence.dynamodb"}
LIB_IMPORT = re.compile(r"^\s*(?:from|import)\s+(lib(?:\.\w+)+)", re.M)


def reachable_code(key: str) -> str:
    """The function's own package and every src/lib module it imports, transitively."""
    src = REPO / "src"
    seen: set[Path] = set()
    pending = list((LAMBDAS / key).rglob("*.py"))
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        for dotted in LIB_IMPORT.findall(path.read_text()):
            base = src.joinpath(*dotted.split("."))
            pending.extend(p for p in (base.with_suffix(".py"), base / "__init__.py") if p.exists())
    code = "\n".join(path.read_text() for path in seen)
    # A library that makes AWS calls on the function's behalf is reachable code too: Powertools'
    # idempotency persistence layer calls get/put/update/delete_item itself.
    for marker, module_name in LIBRARY_CALLERS.items():
        if marker in code:
            code += "\n" + Path(importlib.util.find_spec(module_name).origin).read_text()  # type: ignore[union-attr,arg-type]
    return code


@pytest.mark.req("FR-017", "FR-051")
@pytest.mark.parametrize("key", sorted(load_stack().functions))
def test_every_granted_action_is_called_by_that_function_s_code(key: str) -> None:
    """Issue 16, finding 5: a permission nobody calls is a permission too many."""
    iam = load_stack().raw["functions"][key]["iam"]
    granted = {f"dynamodb:{action}" for grant in iam.get("dynamodb", {}).values() for action in grant["actions"]}
    if iam.get("xray_read"):
        granted |= set(module("lambda_functions").locals["xray_read_actions"])
    if iam.get("cloudwatch_read"):
        granted |= set(module("lambda_functions").locals["cloudwatch_read_actions"])
    code = reachable_code(key)
    uncalled = {action for action in granted if not any(call in code for call in CALLS_FOR_ACTION[action])}
    assert not uncalled, f"{key} is granted {sorted(uncalled)} but its code never calls them"
