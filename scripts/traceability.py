#!/usr/bin/env python3
"""Generate specs/xray-tracing/traceability.md: every FR/SC id → the code that implements it and the
tests that prove it (from `@pytest.mark.req(...)` markers and FR/SC ids in vitest test names).

    scripts/traceability.py --write   # regenerate
    scripts/traceability.py --check   # CI: fail on unknown ids or a stale file

Known ids are the ones specs/requirements.md defines: a list item that starts with its id (or ids,
`FR-003 / FR-004`) defines them; a mention anywhere else is a reference, and must name a defined id.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "specs" / "requirements.md"
OUTPUT = ROOT / "specs" / "xray-tracing" / "traceability.md"
ID = re.compile(r"\b(?:FR|SC)-\d{3}\b")
# A requirement's list item: `- FR-001 text` or `- FR-003 / FR-004 text`.
DEFINITION = re.compile(r"^\s*[-*]\s+(?P<ids>(?:FR|SC)-\d{3}(?:\s*/\s*(?:FR|SC)-\d{3})*)\b")
FRONTEND_TEST = re.compile(r"""\b(?:it|test|describe)\(\s*(["'`])(?P<name>.*?)\1""")
CODE_DIRS = ("src", "infrastructure", "docker", "frontend/src")
CODE_SUFFIXES = {".py", ".tf", ".ts", ".js", ".yaml", ".yml", ".json", ""}


def known_requirements(path: Path = REQUIREMENTS) -> dict[str, str]:
    """id → its requirement's line (first 140 characters), from specs/requirements.md.

    Example: the line `- FR-003 / FR-004 Metrics Lambda: ...` defines FR-003 and FR-004.
    """
    if not path.exists():
        sys.exit(f"traceability: {path} not found")
    known: dict[str, str] = {}
    mentioned: set[str] = set()
    for line in path.read_text().splitlines():
        mentioned.update(ID.findall(line))
        definition = DEFINITION.match(line)
        if definition is None:
            continue
        text = line[definition.start("ids"):].strip()
        for requirement in ID.findall(definition["ids"]):
            if requirement in known:
                sys.exit(f"traceability: {requirement} is defined twice in {path.name}")
            known[requirement] = text[:140]
    undefined = sorted(mentioned - set(known))
    if undefined:
        sys.exit(f"traceability: {path.name} mentions ids it never defines: {', '.join(undefined)}")
    return known


def _marker_ids(node: ast.expr) -> list[str]:
    ids: list[str] = []
    for call in ast.walk(node):
        if (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "req"):
            ids.extend(arg.value for arg in call.args if isinstance(arg, ast.Constant) and isinstance(arg.value, str))
    return ids


def python_tests() -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        tree = ast.parse(path.read_text())
        relative = path.relative_to(ROOT).as_posix()
        module_ids: list[str] = []
        for statement in tree.body:
            if isinstance(statement, ast.Assign) and any(
                isinstance(target, ast.Name) and target.id == "pytestmark" for target in statement.targets
            ):
                module_ids.extend(_marker_ids(statement.value))
        for requirement in module_ids:
            found[requirement].add(relative)

        def visit(node: ast.AST, prefix: str, inherited: list[str]) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    ids = inherited + [i for d in child.decorator_list for i in _marker_ids(d)]
                    name = f"{prefix}::{child.name}"
                    if isinstance(child, ast.ClassDef):
                        visit(child, name, ids)
                    elif child.name.startswith("test"):
                        for requirement in ids:
                            found[requirement].add(name)

        visit(tree, relative, [])
    return found


def frontend_tests() -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for path in sorted((ROOT / "frontend").rglob("*.test.ts")):
        if "node_modules" in path.parts:
            continue
        for match in FRONTEND_TEST.finditer(path.read_text()):
            for requirement in ID.findall(match["name"]):
                found[requirement].add(f"{path.relative_to(ROOT).as_posix()}: {match['name'][:70]}")
    return found


def code_references() -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for directory in CODE_DIRS:
        for path in sorted((ROOT / directory).rglob("*")):
            if (not path.is_file() or "node_modules" in path.parts or path.suffix not in CODE_SUFFIXES
                    or path.name.endswith(".test.ts") or "__pycache__" in path.parts):
                continue
            for requirement in set(ID.findall(path.read_text(errors="replace"))):
                found[requirement].add(path.relative_to(ROOT).as_posix())
    return found


def render(known: dict[str, str], tests: dict[str, set[str]], code: dict[str, set[str]]) -> str:
    lines = [
        "# Traceability: requirement → code → tests",
        "",
        "Generated by `scripts/traceability.py --write` (`make specs`); CI fails when it is stale.",
        "Tests name what they prove with `@pytest.mark.req(...)` (Python) or the id in the test name (vitest).",
        "",
        "| id | requirement | code | tests |",
        "|---|---|---|---|",
    ]
    for requirement in sorted(known, key=lambda r: (r[:2], int(r[3:]))):
        text = known[requirement].replace("|", "\\|")
        code_cell = "<br>".join(sorted(code.get(requirement, ()))) or "-"
        tests_cell = "<br>".join(sorted(tests.get(requirement, ()))) or "**none**"
        lines.append(f"| {requirement} | {text} | {code_cell} | {tests_cell} |")
    proven = sum(1 for requirement in known if tests.get(requirement))
    lines += ["", f"{proven} of {len(known)} ids have at least one test.", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser()
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true")
    mode.add_argument("--check", action="store_true")
    args = parser.parse_args()
    known = known_requirements()
    tests = python_tests()
    for requirement, names in frontend_tests().items():
        tests[requirement] |= names
    unknown = sorted(set(tests) - set(known))
    if unknown:
        print(f"traceability: tests name ids that no requirement lists: {', '.join(unknown)}", file=sys.stderr)
        return 1
    content = render(known, tests, code_references())
    if args.write:
        OUTPUT.parent.mkdir(parents=True, exist_ok=True)
        OUTPUT.write_text(content)
        print(f"wrote {OUTPUT.relative_to(ROOT)}")
        return 0
    if not OUTPUT.exists() or OUTPUT.read_text() != content:
        print("traceability: specs/xray-tracing/traceability.md is stale; run `make specs`", file=sys.stderr)
        return 1
    print(f"traceability: {len(known)} ids, up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
