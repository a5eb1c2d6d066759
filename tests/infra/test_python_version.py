"""One Python version everywhere the code runs, set in one place: the stack map's `python_version`.

Terraform's zip runtime reads it, the SSE image's base derives from the same version, the packaging
script builds wheels for it, `scripts/find-python` (and so the Makefile's venv) prefers it, and the
tests run on it. Each test below reads one of those where it is set and fails when it disagrees.
Lambda's runtime identifier is `python<major.minor>` (python3.13: Amazon Linux 2023, deprecated
2029-06-30; https://docs.aws.amazon.com/lambda/latest/dg/lambda-python.html).
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import tomllib

import pytest
from packaging.specifiers import SpecifierSet

from tests.infra.hcl import REPO, module, stack

VERSION = str(stack()["python_version"])
DOCKER = REPO / "docker" / "sse"

pytestmark = pytest.mark.req("FR-029")


def test_the_version_file_names_one_minor_version_lambda_runs_and_pyproject_admits() -> None:
    assert re.fullmatch(r"3\.\d{2}", VERSION), f"stack.json's python_version must be major.minor, not {VERSION!r}"
    [rule] = module("lambda_functions").variables["runtime"]["validation"]
    hcl_pattern = re.search(r'regex\("(.+?)", var\.runtime\)', rule["condition"])
    assert hcl_pattern, "the lambda_functions module's runtime validation changed shape"
    assert re.search(hcl_pattern[1].replace("\\\\", "\\"), f"python{VERSION}")  # HCL escapes its backslashes
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert f"{VERSION}.0" in SpecifierSet(requires)


def test_terraform_sets_the_zip_runtime_from_the_stack_map() -> None:
    root = module("root")
    assert root.module_calls["lambda_functions"]["runtime"] == "${local.lambda_runtime}"
    assert root.locals["lambda_runtime"] == "python${local.stack.python_version}"
    assert root.locals["stack"] == '${jsondecode(file("${path.module}/stack.json"))}'


def test_the_sse_image_is_built_on_the_same_version() -> None:
    dockerfile = (DOCKER / "Dockerfile").read_text()
    arguments = dict(re.findall(r"^ARG (\w+)=(\S+)$", dockerfile, re.MULTILINE))
    assert arguments.get("PYTHON_VERSION") == VERSION
    assert arguments.get("BASE_IMAGE") == "python:${PYTHON_VERSION}-slim"
    # deploy.sh builds with the BASE_IMAGE of the lock (a digest may follow the tag).
    lock = dict(re.findall(r"^(\w+)=(.*)$", (DOCKER / "collector-layer.lock").read_text(), re.MULTILINE))
    assert re.fullmatch(rf"python:{re.escape(VERSION)}-slim(@sha256:[0-9a-f]{{64}})?", lock["BASE_IMAGE"])


def test_the_zips_are_built_for_the_same_version() -> None:
    spec = importlib.util.spec_from_file_location("package_lambdas", REPO / "infrastructure/scripts/package_lambdas.py")
    assert spec and spec.loader
    package_lambdas = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(package_lambdas)
    assert package_lambdas.PYTHON_VERSION == VERSION
    command = package_lambdas.pip_command("metrics", REPO / "build", package_lambdas.PYTHON_VERSION, "x86_64")
    assert command[command.index("--python-version") + 1] == VERSION


def test_find_python_prefers_the_version_and_the_tests_run_on_it() -> None:
    found = subprocess.run([str(REPO / "scripts" / "find-python")], capture_output=True, text=True, check=True)
    interpreter = found.stdout.strip()
    reported = subprocess.run([interpreter, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                              capture_output=True, text=True, check=True).stdout.strip()
    assert reported == VERSION, found.stderr
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert running == VERSION, f"the tests run on Python {running}, not {VERSION}"
