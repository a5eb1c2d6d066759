"""The Runtime API's wire literals agree between the devstack (`devstack.lambda_.wire`) and the SSE
image's `docker/sse/bootstrap`, which ships alone in the image and keeps its own copies.

The bootstrap is parsed (never imported: it is a program), its module constants evaluated and every
`Lambda-Runtime-*` name and Runtime API path it uses compared with the devstack's, so a header renamed
on one side fails here instead of as a silent mismatch in AWS or locally.
"""

from __future__ import annotations

import ast
import http.client
import json
import re

import pytest

from devstack.lambda_ import wire
from devstack.lambda_.runtime_api import RuntimeApi
from devstack.stack import REPO_ROOT, FunctionSpec

BOOTSTRAP = REPO_ROOT / "docker" / "sse" / "bootstrap"
# The bootstrap's constant name -> the wire constant it must equal.
SHARED_CONSTANTS = {
    "API": wire.API_PREFIX,
    "HTTP_INTEGRATION": wire.HTTP_INTEGRATION,
    "PRELUDE_DELIMITER": wire.PRELUDE_DELIMITER,
    "ERROR_TYPE": wire.ERROR_TYPE_HEADER,
    "ERROR_BODY": wire.ERROR_BODY_TRAILER,
}
PROBE = FunctionSpec("probe", "tests.fixtures.probe_handler.lambda_handler", "zip", 256, 30, {}, {}, None)
HEADER_NAME = re.compile(r"^lambda-runtime-[a-z0-9-]+$", re.IGNORECASE)


def _tree() -> ast.Module:
    return ast.parse(BOOTSTRAP.read_text(), filename=str(BOOTSTRAP))


def _constants(tree: ast.Module) -> dict[str, object]:
    """The bootstrap's module-level `NAME = <literal expression>` values (no names, no calls)."""
    values: dict[str, object] = {}
    for node in tree.body:
        literal = isinstance(node, ast.Assign) and not any(
            isinstance(part, (ast.Name, ast.Call, ast.Attribute)) for part in ast.walk(node.value))
        if literal and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            # Only literal expressions reach eval (checked above), with no builtins: `b"\x00" * 8`.
            values[node.targets[0].id] = eval(compile(ast.Expression(node.value), str(BOOTSTRAP), "eval"),
                                              {"__builtins__": {}})
    return values


def _strings(tree: ast.Module) -> list[str]:
    """Every string constant in the code (docstrings excluded: they describe, they are not sent)."""
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and node.body
                  and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def _path_text(node: ast.expr, api_name: str) -> str | None:
    """A path argument as text: `{API}` for the API constant, `{}` for any other placeholder."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if not isinstance(node, ast.JoinedStr):
        return None
    return "".join("{API}" if isinstance(value, ast.FormattedValue) and isinstance(value.value, ast.Name)
                   and value.value.id == api_name else "{}" if isinstance(value, ast.FormattedValue)
                   else str(value.value) for value in node.values)


def _paths(tree: ast.Module, api_name: str) -> set[str]:
    """The Runtime API paths the bootstrap requests, as full paths: the `path` argument of every
    `connection.request/putrequest(method, path)` and of its client's `post/post_error(path, ...)`,
    which prefix API themselves."""
    paths: set[str] = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr in ("request", "putrequest") and len(node.args) >= 2:
            text = _path_text(node.args[1], api_name)
        elif node.func.attr in ("post", "post_error") and node.args:
            text = _path_text(node.args[0], api_name)
            text = None if text is None else "{API}" + text
        else:
            continue
        if text is not None and text != "{API}{}":  # the client's own `f"{API}{path}"`: its callers are read
            paths.add(text.replace("{API}", wire.API_PREFIX))
    return paths


@pytest.mark.req("FR-059", "FR-062")
def test_the_bootstraps_wire_constants_equal_the_devstacks() -> None:
    constants = _constants(_tree())
    missing = sorted(set(SHARED_CONSTANTS) - set(constants))
    assert not missing, f"docker/sse/bootstrap no longer defines {missing}: update SHARED_CONSTANTS to its names"
    differing = {name: (constants[name], expected) for name, expected in SHARED_CONSTANTS.items()
                 if constants[name] != expected}
    assert not differing, f"bootstrap vs devstack.lambda_.wire (bootstrap, wire): {differing}"


@pytest.mark.req("FR-059", "FR-062")
def test_every_runtime_header_the_bootstrap_uses_is_one_the_devstack_knows() -> None:
    known = {name.lower() for name in wire.HEADERS}
    used = {text for text in _strings(_tree()) if HEADER_NAME.match(text)}
    assert used, "found no Lambda-Runtime-* header in the bootstrap: the parser no longer sees its code"
    unknown = sorted(text for text in used if text.lower() not in known)
    assert not unknown, f"the bootstrap uses {unknown}, which devstack.lambda_.wire does not define"
    # The bootstrap reads /next's headers lower-cased; each one it reads must be one the endpoint sends.
    read = {text for text in used if text == text.lower()}
    assert read, "found no header the bootstrap reads from /next"
    unsent = sorted(read - {name.lower() for name in wire.NEXT_HEADERS})
    assert not unsent, f"the bootstrap reads {unsent} from /next, which the devstack's endpoint never sends"


@pytest.mark.req("FR-059", "FR-062")
def test_the_paths_the_bootstrap_requests_are_the_runtime_apis() -> None:
    paths = _paths(_tree(), "API")
    assert paths, "found no Runtime API path in the bootstrap: the parser no longer sees its code"
    served = {wire.NEXT_PATH, wire.INIT_ERROR_PATH, wire.invocation_path("response", "{}"),
              wire.invocation_path("error", "{}")}
    unserved = sorted(paths - served)
    assert not unserved, f"the bootstrap requests {unserved}, which the devstack's Runtime API does not serve"


@pytest.mark.req("FR-059")
def test_the_endpoint_serves_the_wire_paths_and_sends_the_next_headers() -> None:
    # The other half of the contract: the devstack's endpoint really serves what wire says (a real
    # RuntimeApi on loopback, spoken to over HTTP), so wire cannot drift from the endpoint either.
    with RuntimeApi(PROBE, "127.0.0.1:9") as runtime:  # no daemon needed: the facade's UDP send is fire-and-forget
        call = runtime.invoke({"probe": True}, timeout_s=10)
        host, port = runtime.address.split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        connection.request("GET", wire.NEXT_PATH)
        response = connection.getresponse()
        body = response.read()
        sent = {name.lower() for name, _ in response.getheaders() if HEADER_NAME.match(name)}
        assert response.status == 200 and json.loads(body) == {"probe": True}
        assert sent == {name.lower() for name in wire.NEXT_HEADERS}
        request_id = response.getheader(wire.REQUEST_ID_HEADER)
        assert request_id == call.invocation.request_id
        connection.request("POST", wire.invocation_path("response", request_id), body=b'{"ok": 1}')
        answer = connection.getresponse()
        answer.read()
        connection.close()
        assert answer.status == 202
        assert call.result(timeout_s=5) == {"ok": 1}
