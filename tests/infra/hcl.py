"""Static view of infrastructure/terraform for the policy tests: every .tf parsed with python-hcl2,
normalised (labels and string literals unquoted, `__is_block__` dropped), grouped per module.

Terraform itself does not run in these tests: they read the HCL, the stack map it decodes and the
contract it must honour, and fail when the HCL breaks a rule.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import hcl2

REPO = Path(__file__).resolve().parents[2]
TERRAFORM = REPO / "infrastructure" / "terraform"
MODULES = TERRAFORM / "modules"
STACK_FILE = TERRAFORM / "stack.json"
CONTRACTS = REPO / "specs" / "contracts.md"
ENVIRONMENTS = ("dev", "preprod", "prod")

REFERENCE_PATTERNS = {
    "var": re.compile(r"(?<![\w.])var\.([A-Za-z_][\w-]*)"),
    "local": re.compile(r"(?<![\w.])local\.([A-Za-z_][\w-]*)"),
    "module": re.compile(r"(?<![\w.])module\.([A-Za-z_][\w-]*)(?:\.([A-Za-z_][\w-]*))?"),
    "data": re.compile(r"(?<![\w.])data\.([a-z][a-z0-9_]*)\.([A-Za-z_][\w-]*)"),
    "resource": re.compile(r"(?<![\w.])(aws_[a-z0-9_]+)\.([A-Za-z_][\w-]*)"),
}


def unquote(value: Any) -> Any:
    """python-hcl2 8 keeps the quotes of string literals and labels; 7 does not. Normalise both."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"')
    return value


def normalise(node: Any) -> Any:
    if isinstance(node, dict):
        # python-hcl2 8 adds `__is_block__`, `__comments__`, `__inline_comments__`: not HCL.
        return {unquote(k): normalise(v) for k, v in node.items() if not str(k).startswith("__")}
    if isinstance(node, list):
        return [normalise(v) for v in node]
    return unquote(node)


def strings(node: Any) -> Iterator[str]:
    """Every string (expressions included) anywhere under node."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)
    elif isinstance(node, str):
        yield node


def block(body: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """A nested block (python-hcl2 gives a list of dicts); [] when absent."""
    value = body.get(name, [])
    return value if isinstance(value, list) else [value]


def is_expression(value: Any) -> bool:
    """`${...}` as a whole (an expression attribute), not a template such as `${a}-${b}`."""
    if not (isinstance(value, str) and value.startswith("${") and value.endswith("}")):
        return False
    depth = 0
    for index, char in enumerate(value):
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return index == len(value) - 1
    return False


def expression(value: Any) -> str:
    """The text of `${...}` (an expression attribute), else the value as text."""
    text = str(value)
    return text[2:-1] if is_expression(text) else text


@dataclass
class Module:
    path: Path
    files: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return "root" if self.path == TERRAFORM else self.path.name

    def _blocks(self, kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
        for filename, parsed in self.files.items():
            for entry in parsed.get(kind, []):
                yield filename, entry

    @property
    def resources(self) -> dict[tuple[str, str], dict[str, Any]]:
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for _, entry in self._blocks("resource"):
            for rtype, named in entry.items():
                for rname, body in named.items():
                    found[(rtype, rname)] = body
        return found

    @property
    def data(self) -> dict[tuple[str, str], dict[str, Any]]:
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for _, entry in self._blocks("data"):
            for dtype, named in entry.items():
                for dname, body in named.items():
                    found[(dtype, dname)] = body
        return found

    @property
    def variables(self) -> dict[str, dict[str, Any]]:
        return {name: body for _, entry in self._blocks("variable") for name, body in entry.items()}

    @property
    def outputs(self) -> dict[str, dict[str, Any]]:
        return {name: body for _, entry in self._blocks("output") for name, body in entry.items()}

    @property
    def locals(self) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for _, entry in self._blocks("locals"):
            merged.update(entry)
        return merged

    @property
    def moves(self) -> dict[str, str]:
        """The module's `moved` blocks, from address -> to address.

        e.g. {"aws_kms_key.stack": 'aws_kms_key.this["stack"]'}
        """
        return {expression(entry["from"]): expression(entry["to"]) for _, entry in self._blocks("moved")}

    @property
    def module_calls(self) -> dict[str, dict[str, Any]]:
        return {name: body for _, entry in self._blocks("module") for name, body in entry.items()}

    def of_type(self, rtype: str) -> dict[str, dict[str, Any]]:
        return {name: body for (kind, name), body in self.resources.items() if kind == rtype}

    def text(self) -> str:
        return "\n".join((self.path / f).read_text() for f in sorted(self.files))


def tf_files() -> list[Path]:
    return sorted(p for p in TERRAFORM.rglob("*.tf") if ".terraform" not in p.parts)


@cache
def modules() -> dict[str, Module]:
    found: dict[str, Module] = {}
    for path in tf_files():
        module = found.setdefault(str(path.parent), Module(path.parent))
        with path.open() as handle:
            module.files[path.name] = normalise(hcl2.load(handle))
    return {m.name: m for m in found.values()}


def module(name: str) -> Module:
    return modules()[name]


@cache
def stack() -> dict[str, Any]:
    return json.loads(STACK_FILE.read_text())


def tfvars(environment: str) -> dict[str, Any]:
    with (TERRAFORM / "environments" / f"{environment}.tfvars").open() as handle:
        return normalise(hcl2.load(handle))


@dataclass(frozen=True)
class ContractMetric:
    name: str
    namespace: str
    emitters: tuple[str, ...]
    alarm: str
    treat_missing_data: str


@cache
def contract_metrics() -> dict[str, ContractMetric]:
    """The metric table and the canary paragraph of specs/contracts.md."""
    text = CONTRACTS.read_text()
    section = text.split("## Metrics", 1)[1].split("\n## ", 1)[0]
    app_namespace = re.search(r"Namespace `([^`]+)`:", section)
    assert app_namespace, "contracts.md: no app namespace line"
    function_keys = set(stack()["functions"])
    metrics: dict[str, ContractMetric] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 5 or cells[0] in {"metric", ""} or set(cells[0]) <= {"-"}:
            continue
        name, _unit, emitted_by, alarm, missing = cells
        emitters = tuple(k for k in re.findall(r"[a-z_]+", emitted_by) if k in function_keys)
        metrics[name] = ContractMetric(name, app_namespace[1], emitters, alarm, missing)
    canary = re.search(r"Namespace `([^`]+)` \(canary only[^)]*\):(.*?)(?:\n\n|\Z)", section, re.S)
    assert canary, "contracts.md: no canary namespace paragraph"
    for name, detail in re.findall(r"`([A-Za-z_]+)`\s*\(([^)]*(?:\([^)]*\)[^)]*)*)\)", canary[2]):
        missing = "breaching" if "missing = breaching" in detail else "notBreaching"
        alarm = detail.split("alarm", 1)[1].strip() if "alarm" in detail else ""
        metrics[name] = ContractMetric(name, canary[1], ("canary",), alarm, missing)
    for name in re.findall(r"`([A-Za-z_]+)`", canary[2]):
        metrics.setdefault(name, ContractMetric(name, canary[1], ("canary",), "", "notBreaching"))
    return metrics


def references(text: str) -> dict[str, set[tuple[str, ...]]]:
    found: dict[str, set[tuple[str, ...]]] = {kind: set() for kind in REFERENCE_PATTERNS}
    for kind, pattern in REFERENCE_PATTERNS.items():
        for match in pattern.finditer(text):
            found[kind].add(tuple(g for g in match.groups() if g))
    return found
