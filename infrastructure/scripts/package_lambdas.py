#!/usr/bin/env python3
"""Build the zip packages Terraform deploys: one `<key>.zip` per zip function of the stack map.

Each zip holds `src/lib`, `src/lambdas/__init__.py` and `src/lambdas/<key>/` (the code root is
`src/`, so the map's handler `lambdas.<key>.handler.lambda_handler` imports as is), plus the
function's runtime dependencies: pyproject's base dependencies and its extra named like the
function, installed as wheels for the Lambda platform at the exact versions of the repository's
`constraints.txt` (the versions the tests run with and the SSE image carries). Entries are sorted with fixed timestamps,
so an unchanged tree gives the same zip and Terraform's source_code_hash does not move.

    infrastructure/scripts/package_lambdas.py                     # all zip functions -> build/lambda/
    infrastructure/scripts/package_lambdas.py --only ingestion --skip-deps --out /tmp/pkg
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STACK = REPO / "infrastructure" / "terraform" / "stack.json"
PYPROJECT = REPO / "pyproject.toml"
CONSTRAINTS = REPO / "constraints.txt"
# The project's one Python version: the stack map's, which Terraform makes the zips' runtime.
PYTHON_VERSION: str = json.loads(STACK.read_text())["python_version"]
SRC = REPO / "src"
FIXED_TIME = (2020, 1, 1, 0, 0, 0)
PLATFORMS = {"x86_64": "manylinux2014_x86_64", "arm64": "manylinux2014_aarch64"}


def zip_functions() -> dict[str, dict]:
    stack = json.loads(STACK.read_text())
    return {key: spec for key, spec in stack["functions"].items() if spec["package"] == "zip"}


def requirements(key: str) -> list[str]:
    """pyproject's base dependencies plus the extra named after the function (if any)."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    return [*project["dependencies"], *project.get("optional-dependencies", {}).get(key, [])]


def pip_command(key: str, target: Path, python_version: str, architecture: str) -> list[str]:
    """pip installing `key`'s requirements into `target` as Lambda wheels, pinned by constraints.txt."""
    return [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target),
            "--platform", PLATFORMS[architecture], "--implementation", "cp", "--python-version", python_version,
            "--only-binary=:all:", "--constraint", str(CONSTRAINTS), *requirements(key)]


def install_dependencies(key: str, target: Path, python_version: str, architecture: str) -> None:
    subprocess.run(pip_command(key, target, python_version, architecture), check=True)


def copy_code(key: str, target: Path) -> None:
    handler_dir = SRC / "lambdas" / key
    if not (handler_dir / "handler.py").is_file():
        raise SystemExit(f"{key}: {handler_dir / 'handler.py'} does not exist")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(SRC / "lib", target / "lib", ignore=ignore, dirs_exist_ok=True)
    shutil.copytree(handler_dir, target / "lambdas" / key, ignore=ignore, dirs_exist_ok=True)
    shutil.copy2(SRC / "lambdas" / "__init__.py", target / "lambdas" / "__init__.py")


def write_zip(source: Path, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(destination, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(path.relative_to(source).as_posix(), FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())


def package(key: str, out: Path, skip_deps: bool, python_version: str, architecture: str) -> Path:
    with tempfile.TemporaryDirectory() as staging:
        root = Path(staging)
        if not skip_deps:
            install_dependencies(key, root, python_version, architecture)
        copy_code(key, root)
        destination = out / f"{key}.zip"
        write_zip(root, destination)
    return destination


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "build" / "lambda")
    parser.add_argument("--only", action="append", help="function key (repeatable); default: every zip function")
    parser.add_argument("--skip-deps", action="store_true", help="code only (quick checks)")
    parser.add_argument("--python-version", default=PYTHON_VERSION, help="default: the stack map's (the zip runtime)")
    parser.add_argument("--architecture", default="x86_64", choices=sorted(PLATFORMS))
    args = parser.parse_args(argv)
    functions = zip_functions()
    keys = args.only or sorted(functions)
    unknown = set(keys) - set(functions)
    if unknown:
        parser.error(f"not zip functions of the stack map: {sorted(unknown)}")
    for key in keys:
        print(package(key, args.out, args.skip_deps, args.python_version, args.architecture))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
