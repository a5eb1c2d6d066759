"""Every X-Ray decision stays in `src/lib/tracing` (FR-029, FR-030), read from the code itself with `ast`.

For every function package (what its zip or image carries: `src/lambdas/<key>/`, `src/lib/`, the image's
`bootstrap`), no
module outside `src/lib/tracing` imports the X-Ray SDK or an OTel auto-instrumentation, builds a
Tracer of its own, patches (`patch_all`, `patch`), or creates or moves X-Ray entities
(`xray_recorder`, `begin_segment`, `begin_subsegment`, `in_subsegment`, ...); and the package's one
patching mechanism is `lambda_tracer`, called the same way by every module (`auto_patch=False` on
the SSE function: FR-060).
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"
TRACING = SRC / "lib" / "tracing"
FUNCTIONS = sorted(json.loads((REPO / "infrastructure/terraform/stack.json").read_text())["functions"])

# Modules whose import alone gives a way around lib.tracing.
FORBIDDEN_MODULES = re.compile(r"^(aws_xray_sdk|opentelemetry\.instrumentation|aws_lambda_powertools\.tracing)(\.|$)")
# Names that patch, or create, end or move X-Ray entities (the SDK's recorder and Powertools' provider).
FORBIDDEN_NAMES = frozenset({
    "patch_all", "patch", "xray_recorder", "recorder", "provider", "begin_segment", "end_segment",
    "begin_subsegment", "end_subsegment", "in_segment", "in_subsegment", "put_segment", "put_subsegment",
    "set_trace_entity", "clear_trace_entities", "current_segment", "current_subsegment", "capture",
    "instrument", "BotocoreInstrumentor", "global_sdk_config",
})


def violations(source: str, name: str = "<module>") -> list[str]:
    """What in `source` touches X-Ray outside lib.tracing: one line per finding, `name:line: what`.

    Example:
        >>> violations("from aws_xray_sdk.core import patch_all\\npatch_all()")
        ['<module>:1: imports aws_xray_sdk.core', '<module>:1: uses patch_all', '<module>:2: uses patch_all']
    """
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import):
            found += [f"{name}:{line}: imports {alias.name}" for alias in node.names
                      if FORBIDDEN_MODULES.match(alias.name)]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if FORBIDDEN_MODULES.match(node.module):
                found.append(f"{name}:{line}: imports {node.module}")
            found += [f"{name}:{line}: uses {alias.name}" for alias in node.names if alias.name in FORBIDDEN_NAMES]
        elif isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_NAMES:
            found.append(f"{name}:{line}: uses {node.attr}")
        elif isinstance(node, ast.Name) and node.id in FORBIDDEN_NAMES:
            found.append(f"{name}:{line}: uses {node.id}")
        elif isinstance(node, ast.Call) and _called(node) == "Tracer":
            found.append(f"{name}:{line}: builds its own Tracer (use lib.tracing.powertools.lambda_tracer)")
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and (node.value in FORBIDDEN_NAMES or FORBIDDEN_MODULES.match(node.value))):
            found.append(f"{name}:{line}: names {node.value!r} (getattr / import_module)")
    return found


def _called(call: ast.Call) -> str:
    function = call.func
    if isinstance(function, ast.Attribute):
        return function.attr
    return function.id if isinstance(function, ast.Name) else ""


def tracer_calls(source: str) -> list[str]:
    """How `source` calls `lambda_tracer`: the source text of each call's keyword arguments."""
    return [",".join(sorted(ast.unparse(keyword) for keyword in node.keywords))
            for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Call) and _called(node) == "lambda_tracer"]


def package_modules(key: str) -> list[Path]:
    """The Python modules a function's package carries, outside lib.tracing (the image: its bootstrap too)."""
    modules = [*sorted((SRC / "lambdas" / key).rglob("*.py")), SRC / "lambdas" / "__init__.py",
               *sorted((SRC / "lib").rglob("*.py"))]
    if key == "sse_streaming":
        modules.append(REPO / "docker" / "sse" / "bootstrap")
    return [path for path in modules if TRACING not in path.parents]


@pytest.mark.req("FR-029", "FR-030", "SC-012")
@pytest.mark.parametrize("key", FUNCTIONS)
def test_no_module_of_the_package_touches_xray_outside_lib_tracing(key: str) -> None:
    assert (SRC / "lambdas" / key / "handler.py").is_file()
    found = [finding for path in package_modules(key)
             for finding in violations(path.read_text(), path.relative_to(REPO).as_posix())]
    assert found == []


@pytest.mark.req("FR-030", "FR-060", "SC-012")
@pytest.mark.parametrize("key", FUNCTIONS)
def test_the_package_has_one_patching_mechanism_lambda_tracer_called_one_way(key: str) -> None:
    calls = {path.relative_to(REPO).as_posix(): tracer_calls(path.read_text()) for path in package_modules(key)}
    ways = {way for per_module in calls.values() for way in per_module}
    handler = f"src/lambdas/{key}/handler.py"
    assert calls[handler], f"{handler} builds no lambda_tracer"
    assert ways == ({"auto_patch=False"} if key == "sse_streaming" else {""}), calls


@pytest.mark.req("FR-030")
@pytest.mark.parametrize("snippet", [
    "from aws_xray_sdk.core import patch_all\npatch_all()",
    "import aws_xray_sdk.core\naws_xray_sdk.core.patch(['requests'])",
    "from lib.tracing.powertools import lambda_tracer\ntracer = lambda_tracer()\ntracer.provider.patch(['boto3'])",
    "from aws_lambda_powertools import Tracer\nTracer(auto_patch=True)",
    "from aws_lambda_powertools.tracing import Tracer",
    "import importlib\nimportlib.import_module('aws_xray_sdk.core').xray_recorder.begin_subsegment('x')",
    "getattr(__import__('aws_xray_sdk'), 'patch_all')()",
    "from opentelemetry.instrumentation.botocore import BotocoreInstrumentor\nBotocoreInstrumentor().instrument()",
    "with tracer.provider.in_subsegment('x'):\n    pass",
])
def test_the_check_finds_each_way_around_lib_tracing(snippet: str) -> None:
    assert violations(snippet) != []


@pytest.mark.req("FR-030")
def test_the_check_passes_the_way_the_handlers_are_written() -> None:
    source = ("from aws_lambda_powertools import Tracer\n"
              "from lib.tracing.powertools import lambda_tracer, traced_handler\n"
              "tracer: Tracer = lambda_tracer()\n"
              "@traced_handler(tracer)\ndef lambda_handler(event, context):\n    return {}\n")
    assert violations(source) == []
    assert tracer_calls(source) == [""]
