"""The SSE container image: Dockerfile, collector config, layer pin and its verification, deploy script.

Here the Dockerfile is linted (hadolint) and read, and the scripts its build and `make deploy-sse`
run are executed with stand-ins for `aws` and `docker` on PATH (the AWS half of deploy.sh). The
image itself is built and run by a real engine in test_sse_image_build.py.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.stack import REPO_ROOT, SRC_ROOT, load_stack
from devstack.xray.collector_config import COLLECTOR_CONFIG, load_collector_config, load_indexed_attributes
from tests.fixtures.packages import closure, image_pins

SSE_DIR = REPO_ROOT / "docker" / "sse"
DOCKERFILE = SSE_DIR / "Dockerfile"
LOCK = SSE_DIR / "collector-layer.lock"
HADOLINT = Path(sys.executable).parent / "hadolint"
CONFIG_PATH = "/opt/collector-config/config.yaml"


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions (continuation lines joined, comments dropped)."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip())
            for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def lock_values(path: Path = LOCK) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#"))


# -- Dockerfile ------------------------------------------------------------------------------------
@pytest.mark.req("FR-069")
def test_the_dockerfile_is_hadolint_clean() -> None:
    result = subprocess.run([str(HADOLINT), str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.req("FR-062", "FR-063", "FR-069", "FR-070", "SC-029", "FR-046")
def test_the_image_embeds_the_verified_collector_extension_and_our_config() -> None:
    steps = instructions()
    stages = [value for kind, value in steps if kind == "FROM"]
    assert stages[0] == "${BASE_IMAGE} AS collector" and len(stages) == 3  # multi-stage
    assert all(stage.split()[0] == "${BASE_IMAGE}" for stage in stages)
    runs = [value for kind, value in steps if kind == "RUN"]
    copies = [value for kind, value in steps if kind == "COPY"]
    # stage 1 verifies the pinned zip before anything of it is used
    assert any("unpack-layer.sh" in run and "collector-layer.lock" in run for run in runs)
    assert "sha256sum -c" in (SSE_DIR / "unpack-layer.sh").read_text()
    assert "--from=collector /layer/extensions/ /opt/extensions/" in copies  # SC-029: /opt/extensions/collector
    assert f"docker/sse/collector-config.yaml {CONFIG_PATH}" in copies
    env = next(value for kind, value in steps if kind == "ENV")
    assert f"OPENTELEMETRY_COLLECTOR_CONFIG_URI={CONFIG_PATH}" in env
    assert load_stack().function("sse_streaming").env["OPENTELEMETRY_COLLECTOR_CONFIG_URI"] == CONFIG_PATH
    users = [value for kind, value in steps if kind == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert next(value for kind, value in steps if kind == "ENTRYPOINT") == '["python3", "/var/runtime/bootstrap"]'
    assert "docker/sse/bootstrap /var/runtime/bootstrap" in copies
    # collector only: no ADOT SDK layer, no auto-instrumentation wrapper, nowhere in the image or the stack
    image = " ".join(value for _, value in steps)
    for text in (image, (REPO_ROOT / "infrastructure" / "terraform" / "stack.json").read_text()):
        assert "aws-otel-python" not in text and "AWS_LAMBDA_EXEC_WRAPPER" not in text


@pytest.mark.req("FR-063", "FR-070")
def test_the_layer_is_pinned_by_a_versioned_collector_arn() -> None:
    values = lock_values()
    assert re.fullmatch(r"arn:aws:lambda:[a-z0-9-]+:901920570463:layer:aws-otel-collector-amd64-ver-\d+-\d+-\d+:\d+",
                        values["LAYER_ARN"])
    assert "latest" not in LOCK.read_text().lower().replace("never an unpinned \"latest\"", "")
    assert values["LAYER_SHA256"] == "" or re.fullmatch(r"[0-9a-f]{64}", values["LAYER_SHA256"])


def test_the_image_carries_every_module_the_handler_imports(tmp_path: Path) -> None:
    """What the Dockerfile copies into /var/task is enough to import the handler (deps aside)."""
    task = tmp_path / "task"
    shutil.copytree(SRC_ROOT / "lib", task / "lib")
    (task / "lambdas").mkdir()
    shutil.copy(SRC_ROOT / "lambdas" / "__init__.py", task / "lambdas" / "__init__.py")
    shutil.copytree(SRC_ROOT / "lambdas" / "sse_streaming", task / "lambdas" / "sse_streaming")
    environment = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(task), "AWS_REGION": "us-east-1"}
    result = subprocess.run(
        [sys.executable, "-c", "import lambdas.sse_streaming.handler as h, sys; "
                               "assert all(not (m.__file__ or '').startswith(sys.argv[1]) "
                               "for m in list(sys.modules.values()) if getattr(m, '__file__', None)); "
                               "print(h.lambda_handler.__name__)", str(SRC_ROOT)],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "lambda_handler"


def _closure() -> dict[str, str]:
    """pyproject's base dependencies and `sse` extra, with everything they pull in, as installed here."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    return closure(project["dependencies"] + project["optional-dependencies"]["sse"])


def test_the_image_requirements_pin_exactly_what_the_tests_run_with() -> None:
    expected = _closure()
    assert image_pins(SSE_DIR / "requirements.txt") == expected, "expected docker/sse/requirements.txt:\n" + "\n".join(
        f"{name}=={version}" for name, version in sorted(expected.items()))


# -- collector config ------------------------------------------------------------------------------
@pytest.mark.req("FR-054", "FR-064", "FR-074", "FR-075")
def test_the_collector_pipeline_is_otlp_http_to_awsxray_without_processors() -> None:
    config = load_collector_config()
    assert config["receivers"] == {"otlp": {"protocols": {"http": {"endpoint": "localhost:4318"}}}}
    assert config["service"]["pipelines"] == {"traces": {"receivers": ["otlp"], "exporters": ["awsxray"]}}
    assert "processors" not in config and "processors" not in config["service"]["pipelines"]["traces"]
    assert config["exporters"]["awsxray"]["index_all_attributes"] is False
    assert "aws-otel-collector-amd64-ver-0-117-0" in COLLECTOR_CONFIG.read_text()  # the build that was checked


@pytest.mark.req("FR-006", "FR-007", "FR-008", "FR-009", "FR-048", "FR-085", "FR-090", "SC-005", "SC-020")
def test_everything_operators_filter_on_is_indexed() -> None:
    indexed = load_indexed_attributes()
    required = {"event_type", "latency_ms", "is_cold_start", "is_clock_skew", "connection_count",  # FR-006
                "cache_hit_rate", "cache_entry_count", "cache_max_entries", "trigger", "cache_hit",  # FR-007
                "connection_id", "current_count", "max_connections",  # FR-008
                "item_count", "changed_count", "poll_duration_ms", "sentiment_type",  # FR-009
                "session_id", "previous_trace_id", "connection_sequence",  # FR-048
                "end_reason", "events_sent", "resumed"}  # FR-085 / FR-090: why and how a stream ended
    assert required <= indexed
    assert "client.disconnected" not in indexed  # Lambda never reports a client hang-up to the function
    assert len(indexed) <= 50  # X-Ray keeps at most 50 annotations per document


# -- the layer verification of the build, and make deploy-sse -----------------------------------------
def _layer_zip(path: Path, with_collector: bool = True) -> str:
    with zipfile.ZipFile(path, "w") as archive:
        if with_collector:
            archive.writestr("extensions/collector", "#!/bin/sh\necho collector\n")
        archive.writestr("collector-config/config.yaml", "receivers: {}\n")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _lock(path: Path, sha: str = "") -> Path:
    text = re.sub(r"(?m)^LAYER_SHA256=.*$", f"LAYER_SHA256={sha}", LOCK.read_text())
    path.write_text(text)
    return path


def _unpack(tmp_path: Path, zip_file: Path, lock: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(SSE_DIR / "unpack-layer.sh"), str(zip_file), str(lock), str(tmp_path / "opt")],
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"})


@pytest.mark.req("FR-070", "SC-029")
def test_the_build_unpacks_only_a_layer_matching_the_pin(tmp_path: Path) -> None:
    zip_file = tmp_path / "collector-layer.zip"
    sha = _layer_zip(zip_file)
    good = _unpack(tmp_path, zip_file, _lock(tmp_path / "good.lock", sha))
    assert good.returncode == 0, good.stderr
    collector = tmp_path / "opt" / "extensions" / "collector"
    assert collector.is_file() and collector.stat().st_mode & stat.S_IXUSR

    shutil.rmtree(tmp_path / "opt")
    tampered = _unpack(tmp_path, zip_file, _lock(tmp_path / "bad.lock", "0" * 64))
    assert tampered.returncode != 0 and "FAILED" in tampered.stdout + tampered.stderr
    assert not (tmp_path / "opt").exists()
    unpinned = _unpack(tmp_path, zip_file, _lock(tmp_path / "empty.lock", ""))
    assert unpinned.returncode != 0 and "deploy.sh pin" in unpinned.stderr

    hollow = tmp_path / "hollow.zip"
    hollow_sha = _layer_zip(hollow, with_collector=False)
    missing = _unpack(tmp_path, hollow, _lock(tmp_path / "hollow.lock", hollow_sha))
    assert missing.returncode != 0 and "extensions/collector" in missing.stderr


class FakeCloud:
    """`aws` and `docker` stand-ins on PATH: the layer download is a file:// URL; every call is logged."""

    def __init__(self, tmp_path: Path, zip_file: Path, reported_sha: bytes):
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        self.log = tmp_path / "calls.log"
        reported = base64.b64encode(reported_sha).decode()
        self._script("aws", f"""
case "$1 $2" in
  "lambda get-layer-version-by-arn") printf 'file://{zip_file}\\t{reported}\\n' ;;
  "sts get-caller-identity") echo 123456789012 ;;
  "ecr get-login-password") echo secret ;;
  "ecr describe-repositories") echo '{{}}' ;;
  "configure get") echo us-east-1 ;;
  *) exit 3 ;;
esac""")
        self._script("docker", """
case "$1" in
  pull) exit 1 ;;
  buildx) exit 0 ;;
  image) case "$*" in
    *Size*) echo 123000000 ;;
    *RepoDigests*) echo "other.example/repo@sha256:$(printf %064d 1)"; echo "${5%:*}@sha256:$(printf %064d 7)" ;;
  esac ;;
  login) cat > /dev/null ;;
esac""")

    def _script(self, name: str, body: str) -> None:
        path = self.bin / name
        path.write_text(f'#!/bin/sh\necho "{name} $*" >> "{self.log}"\n{body}\n')
        path.chmod(0o755)

    def run(self, lock: Path, *args: str) -> subprocess.CompletedProcess[str]:
        environment = {"PATH": f"{self.bin}:{os.environ.get('PATH', '')}", "COLLECTOR_LAYER_LOCK": str(lock),
                       "LAYER_DIR": str(lock.parent / "layer"), "ENVIRONMENT": "dev", "AWS_REGION": "eu-west-1",
                       "IMAGE_TAG": "t1", "HOME": str(lock.parent), "PYTHON": sys.executable}
        return subprocess.run(["bash", str(SSE_DIR / "deploy.sh"), *args], capture_output=True, text=True,
                              timeout=60, env=environment)

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


@pytest.fixture
def layer(tmp_path: Path) -> tuple[Path, str]:
    zip_file = tmp_path / "published.zip"
    return zip_file, _layer_zip(zip_file)


@pytest.mark.req("FR-063", "FR-070")
def test_deploy_pin_records_the_sha_aws_vouches_for(tmp_path: Path, layer: tuple[Path, str]) -> None:
    zip_file, sha = layer
    cloud = FakeCloud(tmp_path, zip_file, bytes.fromhex(sha))
    lock = _lock(tmp_path / "collector-layer.lock")
    result = cloud.run(lock, "pin")
    assert result.returncode == 0, result.stderr
    assert lock_values(lock)["LAYER_SHA256"] == sha
    assert lock_values(lock)["LAYER_ARN"] == lock_values()["LAYER_ARN"]
    assert any("get-layer-version-by-arn --region us-east-1" in call for call in cloud.calls())


@pytest.mark.req("FR-070")
def test_deploy_refuses_a_download_aws_does_not_vouch_for(tmp_path: Path, layer: tuple[Path, str]) -> None:
    zip_file, _ = layer
    cloud = FakeCloud(tmp_path, zip_file, hashlib.sha256(b"something else").digest())
    lock = _lock(tmp_path / "collector-layer.lock")
    result = cloud.run(lock, "pin")
    assert result.returncode != 0 and "is not what AWS reports" in result.stderr
    assert lock_values(lock)["LAYER_SHA256"] == ""


@pytest.mark.req("FR-070")
def test_deploy_refuses_an_unpinned_or_differing_layer(tmp_path: Path, layer: tuple[Path, str]) -> None:
    zip_file, sha = layer
    cloud = FakeCloud(tmp_path, zip_file, bytes.fromhex(sha))
    unpinned = cloud.run(_lock(tmp_path / "collector-layer.lock"))
    assert unpinned.returncode != 0 and "not pinned" in unpinned.stderr
    differing = cloud.run(_lock(tmp_path / "collector-layer.lock", "a" * 64))
    assert differing.returncode != 0 and "differs from the pin" in differing.stderr
    assert not [call for call in cloud.calls() if call.startswith("docker build")]


@pytest.mark.req("FR-070")
def test_deploy_builds_pushes_and_prints_the_digest_for_terraform(tmp_path: Path, layer: tuple[Path, str]) -> None:
    zip_file, sha = layer
    cloud = FakeCloud(tmp_path, zip_file, bytes.fromhex(sha))
    result = cloud.run(_lock(tmp_path / "collector-layer.lock", sha))
    assert result.returncode == 0, result.stderr
    digest = "sha256:" + "0" * 63 + "7"
    assert result.stdout.strip().splitlines()[-1] == f'sse_image_digest = "{digest}"'
    calls = cloud.calls()
    registry = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    build = next(call for call in calls if call.startswith("docker buildx build"))
    # one platform, from Terraform's lambda_architecture; no provenance attestation (an image index Lambda rejects)
    assert "--provenance=false" in build and "--platform linux/amd64" in build
    context = tmp_path / ".cache" / "sentiment-analyzer" / "sse-image" / "context"  # HOME is tmp_path
    assert f"--file {context / 'docker/sse/Dockerfile'}" in build and build.endswith(str(context))
    assert f"--tag {registry}/sentiment-analyzer-dev-sse:t1" in build
    assert "--build-arg BASE_IMAGE=python:3.13-slim" in build
    assert f"docker push {registry}/sentiment-analyzer-dev-sse:t1" in calls
    assert (tmp_path / "layer" / "collector-layer.zip").read_bytes() == zip_file.read_bytes()
    # the staged context holds the downloaded layer and the lock it was checked against
    assert (context / "docker/sse/.layer/collector-layer.zip").read_bytes() == zip_file.read_bytes()
    assert (context / "docker/sse/collector-layer.lock").read_text() == (tmp_path / "collector-layer.lock").read_text()
    assert "not pinned by digest" in result.stderr  # the base image pin is reported when missing


def test_the_collector_config_yaml_is_plain_data() -> None:
    """The devstack and the real collector read the same file: nothing but mappings, lists and scalars."""
    def plain(value: Any) -> bool:
        if isinstance(value, dict):
            return all(isinstance(k, str) and plain(v) for k, v in value.items())
        if isinstance(value, list):
            return all(plain(v) for v in value)
        return isinstance(value, str | int | float | bool) or value is None

    assert plain(yaml.safe_load(COLLECTOR_CONFIG.read_text()))
