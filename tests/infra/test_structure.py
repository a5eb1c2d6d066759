"""The Terraform tree is well formed: every file parses, every reference resolves, every module has
its four files, every variable is described and validated, providers and backends are set."""

from __future__ import annotations

import re

import hcl2
import pytest

from tests.infra.hcl import ENVIRONMENTS, TERRAFORM, expression, module, modules, references, tf_files

pytestmark = pytest.mark.req("FR-017")


@pytest.mark.parametrize("path", tf_files(), ids=lambda p: str(p.relative_to(TERRAFORM)))
def test_every_tf_file_parses(path):
    with path.open() as handle:
        assert hcl2.load(handle), f"{path} parsed to nothing"


def test_expected_modules_exist():
    assert set(modules()) == {"root", "data", "lambda_functions", "edge", "observability", "auth"}


@pytest.mark.parametrize("name", ["root", "data", "lambda_functions", "edge", "observability", "auth"])
def test_module_has_main_variables_outputs_versions(name):
    assert {"main.tf", "variables.tf", "outputs.tf", "versions.tf"} <= set(module(name).files)


@pytest.mark.parametrize("name", ["root", "data", "lambda_functions", "edge", "observability"])
def test_every_variable_is_typed_described_and_validated(name):
    for var_name, body in module(name).variables.items():
        assert body.get("description", "").strip(), f"{name}: variable {var_name} has no description"
        assert "type" in body, f"{name}: variable {var_name} has no type"
        if body["type"] == "bool":  # a bool is validated by its type once null is refused
            assert body.get("nullable") is False, f"{name}: bool {var_name} must set nullable = false"
            continue
        assert body.get("validation"), f"{name}: variable {var_name} has no validation"
        for rule in body["validation"]:
            assert f"var.{var_name}" in str(rule["condition"]), f"{name}: {var_name} validation ignores it"
            assert str(rule.get("error_message", "")).strip()


@pytest.mark.parametrize("name", ["root", "data", "lambda_functions", "edge", "observability"])
def test_every_output_is_described(name):
    for out_name, body in module(name).outputs.items():
        assert body.get("description", "").strip(), f"{name}: output {out_name} has no description"


@pytest.mark.parametrize("name", ["root", "data", "lambda_functions", "edge", "observability"])
def test_references_resolve(name):
    """Every var.x, local.x, module.x, data.t.n and aws_t.n used is declared in that module."""
    mod = module(name)
    used = references("\n".join(_expressions(mod)))
    assert not used["var"] - {(v,) for v in mod.variables}, f"{name}: undeclared variables"
    assert not used["local"] - {(k,) for k in mod.locals}, f"{name}: undeclared locals"
    assert not {m[:1] for m in used["module"]} - {(m,) for m in mod.module_calls}, f"{name}: undeclared modules"
    assert not used["data"] - set(mod.data), f"{name}: undeclared data sources"
    assert not used["resource"] - set(mod.resources), f"{name}: undeclared resources"


def _expressions(mod):
    """Expression text of every attribute (labels and literal-only strings carry no references)."""
    from tests.infra.hcl import strings

    for parsed in mod.files.values():
        # A `moved` block's `from` names an address that is no longer declared, by design; its `to` must be.
        declared = {kind: blocks for kind, blocks in parsed.items() if kind != "moved"}
        declared["moved_to"] = [entry["to"] for entry in parsed.get("moved", [])]
        for text in strings(declared):
            if "${" in text or re.match(r"^[a-z_]+\.", text):
                yield text


def test_module_calls_match_module_interfaces():
    """Root passes every required variable, no unknown argument, and reads only declared outputs."""
    root = module("root")
    meta = {"source", "providers", "depends_on", "count", "for_each"}
    for call, body in root.module_calls.items():
        target = module(str(body["source"]).removeprefix("./modules/"))
        arguments = set(body) - meta
        unknown = arguments - set(target.variables)
        assert not unknown, f"module {call}: unknown arguments {unknown}"
        required = {v for v, spec in target.variables.items() if "default" not in spec}
        assert required <= arguments, f"module {call}: missing {required - arguments}"
    for mod in modules().values():
        for ref in references(mod.text())["module"]:
            if len(ref) == 2:
                source = str(root.module_calls[ref[0]]["source"]).removeprefix("./modules/")
                assert ref[1] in module(source).outputs, f"module.{ref[0]}.{ref[1]} is not an output"


def test_root_reads_the_stack_map_once_with_jsondecode():
    root = module("root")
    assert expression(root.locals["stack"]) == 'jsondecode(file("${path.module}/stack.json"))'
    for call, keys in {"data": ["tables", "topics", "queues", "secrets"], "lambda_functions": ["functions"],
                       "observability": ["functions", "metric_namespaces"]}.items():
        for key in keys:
            assert expression(root.module_calls[call][key]) == f"local.stack.{key}", f"{call}.{key}"


def test_every_module_pins_the_aws_provider():
    for mod in modules().values():
        terraform = mod.files["versions.tf"]["terraform"][0]
        assert terraform["required_version"].startswith(">= 1.9")
        aws = terraform["required_providers"][0]["aws"]
        assert aws["source"] == "hashicorp/aws"
        assert re.fullmatch(r">= 5\.\d+\.\d+, < 6\.0\.0", aws["version"])


def test_billing_provider_alias_is_us_east_1_and_reaches_observability():
    root = module("root")
    providers = root.files["versions.tf"]["provider"]
    aliases = {p["aws"].get("alias"): p["aws"]["region"] for p in providers}
    assert aliases["us_east_1"] == "us-east-1"
    observability = module("observability").files["versions.tf"]["terraform"][0]["required_providers"][0]["aws"]
    assert "aws.us_east_1" in str(observability["configuration_aliases"])
    passed = {expression(k): expression(v) for k, v in root.module_calls["observability"]["providers"].items()}
    assert passed == {"aws": "aws", "aws.us_east_1": "aws.us_east_1"}


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_remote_state_per_environment_is_s3_with_dynamodb_lock(environment):
    backend = module("root").files["versions.tf"]["terraform"][0]["backend"]
    assert "s3" in backend[0]
    with (TERRAFORM / "environments" / f"{environment}.backend.hcl").open() as handle:
        config = {k: str(v).strip('"') for k, v in hcl2.load(handle).items() if not k.startswith("__")}
    assert {"bucket", "key", "region", "dynamodb_table", "encrypt"} <= set(config)
    assert environment in config["key"] and environment in config["bucket"]
    assert config["encrypt"].lower() == "true"


def test_each_environment_has_its_own_state_key():
    keys = set()
    for environment in ENVIRONMENTS:
        with (TERRAFORM / "environments" / f"{environment}.backend.hcl").open() as handle:
            keys.add(str(hcl2.load(handle)["key"]))
    assert len(keys) == len(ENVIRONMENTS)


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_tfvars_set_only_declared_variables_and_every_required_one(environment):
    from tests.infra.hcl import tfvars

    values = tfvars(environment)
    declared = module("root").variables
    assert set(values) <= set(declared), f"unknown: {set(values) - set(declared)}"
    required = {v for v, spec in declared.items() if "default" not in spec}
    assert required <= set(values), f"missing: {required - set(values)}"
    assert values["environment"] == environment
