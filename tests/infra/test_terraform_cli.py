"""Terraform's own checks, where Terraform and the AWS provider are installed (they cannot be fetched
here: no provider registry): `fmt -check`, `validate`, and `terraform test` with mocked AWS providers
(infrastructure/terraform/tests/stack.tftest.hcl) applied with each environment's tfvars.

The static tests of this directory prove the same rules without Terraform; these add Terraform's
evaluation of every expression (types, validations, for_each keys, the resolved environment)."""

from __future__ import annotations

import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.infra.hcl import ENVIRONMENTS, TERRAFORM, stack

TERRAFORM_BIN = shutil.which("terraform")
MIRROR = Path(os.environ.get("TF_PROVIDER_MIRROR", "/opt/tf-plugins"))
HAS_PROVIDER = (MIRROR / "registry.terraform.io" / "hashicorp" / "aws").is_dir() or bool(
    os.environ.get("TF_CLI_CONFIG_FILE") and Path(os.environ["TF_CLI_CONFIG_FILE"]).is_file())

needs_terraform = pytest.mark.skipif(TERRAFORM_BIN is None, reason="terraform is not installed on this machine")
needs_provider = pytest.mark.skipif(
    TERRAFORM_BIN is None or not HAS_PROVIDER,
    reason=f"terraform or the hashicorp/aws provider is not installed (no provider mirror at {MIRROR}, "
           "no TF_CLI_CONFIG_FILE; there is no provider registry to fetch it from)")


def run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TERRAFORM_BIN or "terraform", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600, check=False)


def base_env(tmp: Path) -> dict[str, str]:
    env = {**os.environ, "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1", "TF_INPUT": "0"}
    if not (env.get("TF_CLI_CONFIG_FILE") and Path(env["TF_CLI_CONFIG_FILE"]).is_file()):
        config = tmp / "terraformrc"
        hashicorp = '["registry.terraform.io/hashicorp/*"]'
        config.write_text(
            "provider_installation {\n"
            f'  filesystem_mirror {{\n    path    = "{MIRROR}"\n    include = {hashicorp}\n  }}\n'
            f"  direct {{\n    exclude = {hashicorp}\n  }}\n}}\n")
        env["TF_CLI_CONFIG_FILE"] = str(config)
    return env


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str]]:
    """A copy of infrastructure/terraform, initialised without a backend, and dummy zip packages."""
    tmp = tmp_path_factory.mktemp("terraform")
    copy = tmp / "terraform"
    shutil.copytree(TERRAFORM, copy, ignore=shutil.ignore_patterns(".terraform", ".terraform.lock.hcl", "*.tfstate*"))
    packages = tmp / "packages"
    packages.mkdir()
    for key, spec in stack()["functions"].items():
        if spec["package"] == "zip":
            with zipfile.ZipFile(packages / f"{key}.zip", "w") as archive:
                archive.writestr(spec["handler"].rsplit(".", 1)[0].replace(".", "/") + ".py", "")
    env = base_env(tmp)
    result = run(["init", "-backend=false", "-input=false", "-no-color"], copy, env)
    assert result.returncode == 0, result.stdout + result.stderr
    return copy, packages, env


@pytest.mark.req("FR-017")
@needs_terraform
def test_terraform_fmt_is_clean(tmp_path):
    result = run(["fmt", "-check", "-recursive", "-diff", "-no-color"], TERRAFORM, base_env(tmp_path))
    assert result.returncode == 0, "terraform fmt would change:\n" + result.stdout + result.stderr


@pytest.mark.req("FR-017")
@needs_provider
def test_terraform_validate(workdir):
    copy, _, env = workdir
    result = run(["validate", "-no-color"], copy, env)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.req("FR-017", "FR-034", "FR-040", "FR-041", "FR-042", "FR-043", "FR-046", "FR-068", "FR-071", "FR-020")
@needs_provider
@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_terraform_test_applies_each_environment_with_mocked_aws(workdir, environment):
    copy, packages, env = workdir
    result = run(["test", "-no-color", f"-var-file=environments/{environment}.tfvars",
                  f"-var=lambda_package_dir={packages}"], copy, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 0 failed" in result.stdout


@pytest.mark.req("FR-034")
@needs_provider
def test_terraform_refuses_sampling_below_100_percent_outside_prod(workdir):
    copy, packages, env = workdir
    result = run(["test", "-no-color", "-var-file=environments/preprod.tfvars", "-var=xray_sampling_rate=0.5",
                  f"-var=lambda_package_dir={packages}"], copy, env)
    assert result.returncode != 0
    assert "dev and preprod sample 100 %" in result.stdout + result.stderr
