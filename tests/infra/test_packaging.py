"""The zip packages Terraform deploys: code root src/, the map's handler importable, reproducible."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import zipfile

import pytest

from devstack.stack import SRC_ROOT, load_stack
from tests.fixtures.packages import closure, image_pins, imports_within, site_of
from tests.infra.hcl import REPO, module, stack

_spec = importlib.util.spec_from_file_location("package_lambdas", REPO / "infrastructure/scripts/package_lambdas.py")
assert _spec and _spec.loader
package_lambdas = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(package_lambdas)


def test_terraform_reads_one_zip_per_zip_function_from_the_package_dir():
    mod = module("lambda_functions")
    assert 'filebase64sha256("${var.package_dir}/${key}.zip")' in str(mod.locals["zip_hashes"])
    body = mod.of_type("aws_lambda_function")["this"]
    assert '"${var.package_dir}/${each.key}.zip"' in str(body["filename"])
    assert set(package_lambdas.zip_functions()) == {k for k, f in stack()["functions"].items() if f["package"] == "zip"}


@pytest.mark.parametrize("key", ["ingestion", "analysis", "canary"])
def test_package_holds_the_handler_under_the_code_root_and_is_reproducible(key, tmp_path):
    version = package_lambdas.PYTHON_VERSION
    first = package_lambdas.package(key, tmp_path / "a", skip_deps=True, python_version=version, architecture="x86_64")
    second = package_lambdas.package(key, tmp_path / "b", skip_deps=True, python_version=version, architecture="x86_64")
    names = zipfile.ZipFile(first).namelist()
    handler = stack()["functions"][key]["handler"].rsplit(".", 1)[0].replace(".", "/") + ".py"
    assert handler in names
    assert "lambdas/__init__.py" in names and "lib/metrics.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert hashlib.sha256(first.read_bytes()).digest() == hashlib.sha256(second.read_bytes()).digest()


def test_dependencies_are_the_base_plus_the_function_extra():
    assert any(r.startswith("vaderSentiment") for r in package_lambdas.requirements("analysis"))
    assert any(r.startswith("boto3") for r in package_lambdas.requirements("metrics"))
    assert not any(r.startswith("vaderSentiment") for r in package_lambdas.requirements("ingestion"))


@pytest.mark.req("FR-029", "FR-030")
@pytest.mark.parametrize("key", sorted(load_stack().functions))
def test_each_handler_imports_with_only_what_its_package_installs(key, tmp_path):
    """The zip's requirements (base + the function's extra) or the image's pins: nothing else is there."""
    spec = load_stack().function(key)
    installed = closure(package_lambdas.requirements(key)) if spec.package == "zip" else image_pins()
    env = {"PATH": os.environ.get("PATH", ""), "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
           "LAMBDA_TASK_ROOT": str(SRC_ROOT), "AWS_LAMBDA_FUNCTION_NAME": spec.name, **spec.env}
    result = imports_within(spec.handler.rpartition(".")[0], site_of(installed, tmp_path), env, SRC_ROOT)
    assert result.returncode == 0, result.stderr[-1500:]
