"""Every distribution a deployed artefact carries is pinned to an exact version in one place,
`constraints.txt`, and the zips, the SSE image and the test environment all use those versions."""

from __future__ import annotations

import importlib.util
import re
import tomllib

import pytest
from packaging.utils import canonicalize_name

from tests.fixtures.packages import closure, image_pins
from tests.infra.hcl import REPO, stack

CONSTRAINTS = REPO / "constraints.txt"
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]

_spec = importlib.util.spec_from_file_location("package_lambdas", REPO / "infrastructure/scripts/package_lambdas.py")
assert _spec and _spec.loader
package_lambdas = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(package_lambdas)

pytestmark = pytest.mark.req("FR-029")


def pins() -> dict[str, str]:
    """{distribution: version} of constraints.txt; a line that is not `name==version` fails."""
    found: dict[str, str] = {}
    for line in CONSTRAINTS.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([0-9][0-9A-Za-z.+!-]*)", line.strip())
        assert match, f"constraints.txt: {line!r} is not an exact pin"
        assert canonicalize_name(match[1]) not in found, f"constraints.txt pins {match[1]} twice"
        found[canonicalize_name(match[1])] = match[2]
    return found


def carried() -> dict[str, dict[str, str]]:
    """What each artefact installs, as resolved in this environment: every zip function, and the image."""
    functions = stack()["functions"]
    artefacts = {key: closure(package_lambdas.requirements(key)) for key in functions
                 if functions[key]["package"] == "zip"}
    artefacts["sse image"] = closure(PROJECT["dependencies"] + PROJECT["optional-dependencies"]["sse"])
    return artefacts


def test_the_tracing_sdks_are_pinned_exactly() -> None:
    assert {"aws-xray-sdk", "aws-lambda-powertools", "boto3", "botocore"} <= set(pins())


def test_every_distribution_an_artefact_carries_is_pinned_and_the_tests_run_that_version() -> None:
    pinned = pins()
    unpinned = {f"{artefact}: {name}" for artefact, installed in carried().items() for name in installed
                if name not in pinned}
    assert unpinned == set(), "add them to constraints.txt"
    drifted = {f"{name}: {version} here, {pinned[name]} pinned" for installed in carried().values()
               for name, version in installed.items() if pinned[name] != version}
    assert drifted == set(), "the test environment must run the pinned versions (make clean, then make)"


def test_nothing_is_pinned_that_no_artefact_carries() -> None:
    used = {name for installed in carried().values() for name in installed}
    assert set(pins()) - used == set()


def test_the_image_installs_the_pinned_versions_of_its_closure() -> None:
    pinned = pins()
    sse = carried()["sse image"]
    expected = {name: pinned[name] for name in sse}
    assert image_pins() == expected, "expected docker/sse/requirements.txt:\n" + "\n".join(
        f"{name}=={version}" for name, version in sorted(expected.items()))


def test_the_zips_install_under_the_constraints() -> None:
    command = package_lambdas.pip_command("ingestion", REPO / "build", "3.13", "x86_64")
    assert command[command.index("--constraint") + 1] == str(CONSTRAINTS)
    assert "--upgrade" not in command and "-U" not in command


def test_the_test_environment_installs_under_the_constraints() -> None:
    makefile = (REPO / "Makefile").read_text()
    installs = re.findall(r"pip install [^\n]*\.\[dev\]", makefile)
    assert installs and all("-c constraints.txt" in line for line in installs), installs
    assert re.search(r"^\$\(STAMP\):.*\bconstraints\.txt\b", makefile, re.MULTILINE)
