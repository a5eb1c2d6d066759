"""What the SSE Lambda's code must never contain (read from its source, the way a reviewer would)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from devstack.stack import REPO_ROOT, SRC_ROOT

SSE_SOURCES = [*sorted((SRC_ROOT / "lambdas" / "sse_streaming").glob("*.py")),
               REPO_ROOT / "docker" / "sse" / "bootstrap", SRC_ROOT / "lib" / "tracing" / "otel.py"]


def _trees() -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text(), str(path))) for path in SSE_SOURCES]


def _names(tree: ast.AST) -> set[str]:
    """Every identifier, attribute name and string constant of a module."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, ast.alias):
            found.update(node.name.split("."))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.add(node.value)
    return found


@pytest.mark.req("FR-026", "FR-027", "FR-076", "FR-025", "FR-037", "FR-068", "FR-046", "SC-010", "SC-032")
@pytest.mark.parametrize(("name", "why"), [
    ("begin_segment", "a no-op inside Lambda (FR-026/027)"),
    ("patch_all", "one patching mechanism; the SSE Tracer patches nothing (FR-030, FR-060)"),
    ("BotocoreInstrumentor", "no OTel auto-instrumentation (FR-076)"),
    ("AsyncContext", "keep the X-Ray SDK's thread-local context (FR-025/037)"),
    ("OTEL_PROPAGATORS", "the code sets the propagator (FR-068)"),
    ("AWS_LAMBDA_EXEC_WRAPPER", "the collector is a sidecar only (FR-046)"),
    ("capture", "no raw xray_recorder.capture (SC-012)"),
])
def test_the_sse_code_never_uses(name: str, why: str) -> None:
    for path, tree in _trees():
        assert name not in _names(tree), f"{path.relative_to(REPO_ROOT)} uses {name}: {why}"


@pytest.mark.req("FR-031")
def test_no_generator_is_wrapped_in_a_decorator() -> None:
    """A decorator on a generator times its creation, not its iteration: generators get manual spans."""
    for path, tree in _trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.decorator_list:
                inner = [n for n in ast.walk(node) if isinstance(n, ast.Yield | ast.YieldFrom)
                         and not _inside_nested_function(node, n)]
                decorators = [ast.unparse(d) for d in node.decorator_list]
                assert not inner or decorators in (["contextmanager"],), \
                    f"{path.relative_to(REPO_ROOT)}:{node.lineno} {node.name} is a generator decorated {decorators}"


def _inside_nested_function(outer: ast.AST, target: ast.AST) -> bool:
    return any(node is not outer and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
               and any(child is target for child in ast.walk(node)) for node in ast.walk(outer))


@pytest.mark.req("FR-060")
def test_the_sse_tracer_does_not_patch() -> None:
    calls = [node for _, tree in _trees() for node in ast.walk(tree)
             if isinstance(node, ast.Call) and ast.unparse(node.func) == "lambda_tracer"]
    assert calls and all(any(k.arg == "auto_patch" and ast.unparse(k.value) == "False" for k in call.keywords)
                         for call in calls)


@pytest.mark.req("FR-059", "FR-065")
def test_trace_context_is_never_extracted_at_module_level() -> None:
    for path, tree in _trees():
        for statement in tree.body:
            if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                continue
            called = {ast.unparse(n.func) for n in ast.walk(statement) if isinstance(n, ast.Call)}
            assert not called & {"extract_invocation_parent", "propagate.extract", "invocation_context"}, path
