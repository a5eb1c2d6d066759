"""The published contract, fuzzed: schemathesis reads the OpenAPI document the API serves
(/api/v2/docs?format=json, Powertools' resolver) and sends generated requests, valid and invalid,
through the running local stack (`python -m devstack up` on a free port: edge, emulated API Gateway
with the Cognito authorizer, the dashboard function in its own runtime, moto).

0 server errors, 0 status codes the document does not declare, 0 bodies that break their declared
schema: the contract says what the API really answers. Signed in as the seeded demo user (its ID
token from moto's Cognito), so the alert routes are exercised past the authorizer too; a second
run without a token proves their 401 is declared.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from devstack.seed import DEMO_USER
from tests.fixtures.local_stack import devstack_up

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
# What "conforms" means here (schemathesis' names for the three promises of the issue).
CHECKS = "not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance"
MAX_EXAMPLES = 25  # per operation and phase: the run stays around a minute on a shared machine


@dataclass
class LocalStack:
    gateway: str
    aws_endpoint: str
    client_id: str
    directory: Path


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    directory = tmp_path_factory.mktemp("contract-stack")
    with devstack_up(directory, "--schedule", "ingestion=0", "--schedule", "metrics=0", "--schedule", "canary=0",
                     start_timeout_s=90) as (state, _):
        yield LocalStack(state["gateway"], state["aws_endpoint"], state["cognito"]["client_id"], directory)


def demo_id_token(stack: LocalStack) -> str:
    cognito = boto3.client("cognito-idp", endpoint_url=stack.aws_endpoint, region_name="us-east-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing")
    username, password = DEMO_USER
    result = cognito.initiate_auth(AuthFlow="USER_PASSWORD_AUTH", ClientId=stack.client_id,
                                   AuthParameters={"USERNAME": username, "PASSWORD": password})
    return str(result["AuthenticationResult"]["IdToken"])


def run_schemathesis(stack: LocalStack, report: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [str(SCHEMATHESIS), "run", f"{stack.gateway}/api/v2/docs?format=json", "--url", stack.gateway,
               "--checks", CHECKS, "--max-examples", str(MAX_EXAMPLES), "--seed", "21", "--workers", "1",
               "--request-timeout", "30", "--report", "junit", "--report-junit-path", str(report), *extra]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=stack.directory,
                            env={**os.environ, "NO_COLOR": "1"})
    report.with_suffix(".txt").write_text(result.stdout + result.stderr)
    return result


def failures(result: subprocess.CompletedProcess[str]) -> str:
    """The failing operations and what failed, from schemathesis' report."""
    keep = re.compile(r"^(_{3,} .* _{3,}|- ST\d+ .*|\[\d{3}\] .*|curl .*)$")
    return "\n".join(line.strip() for line in result.stdout.splitlines() if keep.match(line.strip()))[:8000]


@pytest.mark.req("FR-018")
@pytest.mark.timeout(900)
def test_the_api_serves_its_openapi_document_and_swagger_ui(local_stack: LocalStack) -> None:
    with urllib.request.urlopen(f"{local_stack.gateway}/api/v2/docs?format=json", timeout=30) as response:
        document = json.load(response)
    statuses = {path: {method: sorted(op["responses"]) for method, op in ops.items()}
                for path, ops in document["paths"].items()}
    assert statuses["/api/v2/alerts"]["post"] == ["201", "400", "401", "403", "404", "413", "429"]
    assert statuses["/api/v2/alerts/{alert_id}"]["delete"] == ["204", "400", "401", "403", "404", "413", "429"]
    assert statuses["/api/v2/health"]["get"] == ["200", "403", "413", "429"]
    assert all("422" not in codes for ops in statuses.values() for codes in ops.values())  # we answer 400
    error = document["components"]["schemas"]["ApiErrorBody"]
    assert set(error["required"]) == {"error", "message"}
    with urllib.request.urlopen(f"{local_stack.gateway}/api/v2/docs", timeout=30) as response:
        assert response.headers["Content-Type"].startswith("text/html") and b"swagger" in response.read().lower()


@pytest.mark.req("FR-018")
@pytest.mark.timeout(900)
def test_schemathesis_finds_no_server_error_undocumented_status_or_schema_violation(local_stack: LocalStack,
                                                                                    tmp_path: Path) -> None:
    signed_in = run_schemathesis(local_stack, tmp_path / "signed-in.xml",
                                 "--header", f"Authorization: {demo_id_token(local_stack)}")
    assert signed_in.returncode == 0, failures(signed_in) or signed_in.stdout[-3000:] + signed_in.stderr[-2000:]
    assert "generated" in signed_in.stdout, signed_in.stdout[-3000:]  # it ran cases
    anonymous = run_schemathesis(local_stack, tmp_path / "anonymous.xml", "--include-path-regex", "^/api/v2/alerts")
    assert anonymous.returncode == 0, failures(anonymous) or anonymous.stdout[-3000:] + anonymous.stderr[-2000:]
