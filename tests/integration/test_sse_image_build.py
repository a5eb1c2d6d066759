"""The SSE image, built for real from the committed Dockerfile and run the way Lambda runs it.

The session installs what it needs (apt: docker.io, debootstrap, docker-registry), starts a docker
engine of its own (scripts/docker_engine.py; data under the cache dir, so the base and the build
cache survive between runs) and stops it at the end. A machine that cannot run dockerd fails here,
with the reason. The image embeds the stand-in collector (docker/sse/standin-collector/), pinned by
its lock through the same check as the ADOT layer. `make deploy-sse` is run end to end against a
local registry (Debian's docker-registry) in place of ECR. The `engine` and `image` fixtures are in
this directory's conftest.py, shared with test_sse_container.py (one engine, one build per session).
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from scripts import sse_image
from scripts.docker_engine import Engine, install_packages

# A cold run debootstraps the base and pip-installs the dependencies stage: minutes, not seconds.
pytestmark = pytest.mark.timeout(1800)

RUNTIME_API = "/2018-06-01/runtime"
USER_ID = "10001"  # the Dockerfile's non-root user


def docker(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)


def run_in_image(image: str, *command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`command` in the image as Lambda runs it (read-only root, writable /tmp, the image's user)."""
    argv = sse_image.run_argv(image, env or {}, command=list(command[1:]))
    entrypoint_at = argv.index(image)
    argv[entrypoint_at:entrypoint_at] = ["--entrypoint", command[0]]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def function_env() -> dict[str, str]:
    """The SSE function's environment from stack.json, references resolved to local names."""
    stack = json.loads((sse_image.TERRAFORM / "stack.json").read_text())
    env = {key: value.split(":", 1)[1] if value.split(":", 1)[0] in {"table", "topic", "queue", "secret"} else value
           for key, value in stack["functions"][sse_image.SSE_FUNCTION]["env"].items()}
    return {**env, "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_LAMBDA_FUNCTION_NAME": "sentiment-analyzer-dev-sse_streaming",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024", "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing"}


def serve(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- the image ----------------------------------------------------------------------------------
@pytest.mark.req("FR-062", "FR-069")
def test_the_image_builds_from_the_committed_dockerfile_and_reports_its_base_and_size(
        image: sse_image.Built) -> None:
    assert image.size_bytes > 0 and image.platform == sse_image.engine_platform()
    config = json.loads(docker("image", "inspect", image.tag).stdout)[0]["Config"]
    assert config["Entrypoint"] == ["python3", "/var/runtime/bootstrap"]
    assert config["User"] == USER_ID and config["WorkingDir"] == "/var/task"
    # the base is the lock's default when the engine can get it, else the debootstrap trixie base
    assert image.base.image in {sse_image.lock_value(sse_image.REAL_LOCK, "BASE_IMAGE")} or \
        image.base.image.startswith(f"{sse_image.BASE_REPOSITORY}:trixie-")


@pytest.mark.req("FR-069")
def test_the_image_runs_as_the_non_root_user_on_a_read_only_root_with_a_writable_tmp(
        image: sse_image.Built) -> None:
    script = ("import os, pathlib; print(os.getuid(), os.getgid()); pathlib.Path('/tmp/probe').write_text('x');"
              "\ntry:\n    open('/var/task/probe', 'w')\nexcept OSError as error:\n    print(type(error).__name__)")
    result = run_in_image(image.tag, "python3", "-c", script)
    assert result.returncode == 0, result.stderr
    uid, _gid = result.stdout.split()[:2]
    assert uid == USER_ID and result.stdout.split()[2] == "OSError"  # the root filesystem refused the write


@pytest.mark.req("FR-062", "FR-069")
def test_python_is_3_13_and_the_function_imports_inside_the_image(image: sse_image.Built) -> None:
    script = ("import sys, importlib; print('%d.%d' % sys.version_info[:2]);"
              "importlib.import_module(sys.argv[1].rpartition('.')[0]); print('imported')")
    result = run_in_image(image.tag, "python3", "-c", script, sse_image.handler_command(), env=function_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["3.13", "imported"]


# What the handler's import loads from /var/task, in the image as Lambda runs it: `python3 -v` says, for
# every module it loads, where its code object came from ("# code object from '<path>'"): a .pyc read
# from __pycache__, or a .py compiled at that moment. Then each /var/task module in sys.modules, by file.
BYTECODE_PROBE = """
import importlib, sys
importlib.import_module(sys.argv[1].rpartition('.')[0])
for name, module in sorted(sys.modules.items()):
    spec = getattr(module, '__spec__', None)
    origin = getattr(spec, 'origin', None) or ''
    if origin.startswith('/var/task/') and origin.endswith('.py'):
        print(spec.origin, spec.cached)
"""


@pytest.mark.req("FR-062", "FR-090")
def test_the_handlers_import_loads_every_var_task_module_from_the_images_bytecode(image: sse_image.Built) -> None:
    """A cold start compiles nothing: every module the handler imports from /var/task (dependencies and
    our code) loads from a .pyc built into the image (each execution environment starts from the image
    and cannot write it), and that .pyc is unchecked-hash based (PEP 552: no mtime, reproducible; never
    re-validated against the source)."""
    result = run_in_image(image.tag, "python3", "-v", "-c", BYTECODE_PROBE, sse_image.handler_command(),
                          env=function_env())
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = dict(line.split() for line in result.stdout.splitlines())
    assert len(loaded) > 100 and any(origin.startswith("/var/task/lambdas/") for origin in loaded), loaded
    # the path is quoted for a .pyc read, bare for a source compiled (importlib._bootstrap_external)
    code_from = [line.removeprefix("# code object from ").strip("'") for line in result.stderr.splitlines()
                 if line.startswith("# code object from ")]
    compiled_at_import = sorted(path for path in code_from if path.startswith("/var/task/") and path.endswith(".py"))
    assert compiled_at_import == [], f"{len(compiled_at_import)} modules compiled at import: {compiled_at_import[:10]}"
    assert set(loaded.values()) <= set(code_from), "a /var/task module whose code did not come from its .pyc"
    flags = run_in_image(image.tag, "python3", "-c",
                         "import sys\nfor path in sys.argv[1:]:\n"
                         "    print(int.from_bytes(open(path, 'rb').read(8)[4:8], 'little'))",
                         *sorted(loaded.values()))
    assert flags.returncode == 0, flags.stderr[-2000:]
    assert set(flags.stdout.split()) == {"1"}, "not all hash-based, unchecked (PEP 552 flags 0b01)"


@pytest.mark.req("FR-062", "FR-063", "FR-070", "SC-029")
def test_the_collector_extension_and_its_config_are_where_lambda_and_the_collector_look(
        image: sse_image.Built) -> None:
    result = run_in_image(image.tag, "sh", "-c",
                          "test -f /opt/extensions/collector && test -x /opt/extensions/collector && echo executable;"
                          " cat /opt/collector-config/config.yaml")
    assert result.returncode == 0, result.stderr
    first, _, config = result.stdout.partition("\n")
    assert first == "executable"
    assert config == (sse_image.SSE_DIR / "collector-config.yaml").read_text()


@pytest.mark.req("FR-062", "FR-054", "SC-029")
def test_the_embedded_extension_registers_and_forwards_otlp_from_inside_the_container(
        image: sse_image.Built) -> None:
    """The extension Lambda would start (/opt/extensions/collector), run in the container against a
    local Extensions API, forwards an OTLP request made inside the container to a receiver outside."""
    events: queue.Queue[bytes] = queue.Queue()
    seen: list[tuple[str, str]] = []
    received: list[tuple[str, bytes]] = []

    class ExtensionsApi(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            seen.append((self.path, self.headers["Lambda-Extension-Name"]))
            self.send_response(200)
            self.send_header("Lambda-Extension-Identifier", "ext-1")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def do_GET(self) -> None:
            body = events.get(timeout=60)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append((self.path, self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    api, receiver = serve(ExtensionsApi), serve(Receiver)
    listen = free_port()
    name = f"sse-extension-test-{os.getpid()}"
    env = {"AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{api.server_address[1]}",
           "STANDIN_COLLECTOR_UPSTREAM": f"http://127.0.0.1:{receiver.server_address[1]}",
           "STANDIN_COLLECTOR_LISTEN": f"127.0.0.1:{listen}"}
    argv = sse_image.run_argv(image.tag, env, command=[], name=name)
    argv[argv.index(image.tag):argv.index(image.tag)] = ["--entrypoint", "/opt/extensions/collector"]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not seen and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.2)
        assert seen == [("/2020-01-01/extension/register", "collector")], process.stderr
        exported = docker("exec", name, "python3", "-c",
                          "import urllib.request, sys; print(urllib.request.urlopen(urllib.request.Request("
                          f"'http://127.0.0.1:{listen}/v1/traces', data=b'otlp-bytes', "
                          "headers={'Content-Type': 'application/x-protobuf'})).status)")
        assert exported.stdout.strip() == "200", exported.stderr
        assert received == [("/v1/traces", b"otlp-bytes")]
        events.put(json.dumps({"eventType": "SHUTDOWN", "shutdownReason": "spindown", "deadlineMs": 0}).encode())
        # `docker run --rm` returns once the container is removed too: on vfs, under load, that alone took > 30 s
        assert process.wait(timeout=120) == 0
    finally:
        if process.poll() is None:
            docker("kill", name)
            process.wait(timeout=30)
        api.shutdown()
        receiver.shutdown()


@pytest.mark.req("FR-062", "FR-069")
def test_the_image_starts_as_lambda_starts_it_entrypoint_with_the_handler_as_its_argument(
        image: sse_image.Built) -> None:
    """ENTRYPOINT + the image command (the handler, as Lambda's ImageConfig.Command passes it, no
    _HANDLER variable: AWS's own base images derive _HANDLER from that argument in their
    lambda-entrypoint.sh), read-only root, /tmp writable: init succeeds and the runtime asks the
    Runtime API for its first invocation."""
    requests: queue.Queue[str] = queue.Queue()

    class RuntimeApi(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.put(f"GET {self.path}")
            time.sleep(5)  # long-poll until the test is done, then close: the runtime exits
            self.send_response(500)
            self.end_headers()

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            requests.put(f"POST {self.path} {body[:300]!r}")
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    api = serve(RuntimeApi)
    name = f"sse-runtime-test-{os.getpid()}"
    argv = sse_image.run_argv(image.tag, {**function_env(),
                                          "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{api.server_address[1]}"}, name=name)
    assert argv[-1] == sse_image.handler_command() and "_HANDLER" not in " ".join(argv)
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = requests.get(timeout=60)
        assert first == f"GET {RUNTIME_API}/invocation/next", first
    finally:
        docker("kill", name)
        process.wait(timeout=30)
        api.shutdown()


# -- the collector pin ---------------------------------------------------------------------------
@pytest.mark.req("FR-063", "FR-070")
@pytest.mark.parametrize(("pin", "message"), [("0" * 64, "FAILED"), ("", "has no LAYER_SHA256")],
                         ids=["wrong", "empty"])
def test_a_build_whose_layer_does_not_match_the_pin_fails(
        engine: Engine, image: sse_image.Built, tmp_path: Path, pin: str, message: str) -> None:
    lock = tmp_path / "collector-layer.lock"
    lock.write_text(sse_image.STANDIN_LOCK.read_text().replace(
        f"LAYER_SHA256={sse_image.lock_value(sse_image.STANDIN_LOCK, 'LAYER_SHA256')}", f"LAYER_SHA256={pin}"))
    layer = sse_image.Layer("stand-in, wrong pin", sse_image.standin_layer().zip_path, lock)
    with pytest.raises(subprocess.CalledProcessError) as failed:
        sse_image.build("sentiment-analyzer-sse:wrong-pin", layer, base=image.base, quiet=True)
    assert message in failed.value.stdout + failed.value.stderr
    assert docker("image", "inspect", "sentiment-analyzer-sse:wrong-pin").returncode != 0


# -- make deploy-sse against a local registry --------------------------------------------------------
@pytest.fixture
def registry(engine: Engine, tmp_path: Path) -> Iterator[str]:
    install_packages(("docker-registry",))
    port = free_port()
    config = tmp_path / "registry.yml"
    config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path / 'registry'}\n"
                      f"http:\n  addr: 127.0.0.1:{port}\n")
    process = subprocess.Popen([shutil.which("docker-registry") or "docker-registry", "serve", str(config)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while subprocess.run(["curl", "-sf", f"http://127.0.0.1:{port}/v2/"], capture_output=True).returncode != 0:
        assert process.poll() is None and time.monotonic() < deadline, "docker-registry did not start"
        time.sleep(0.2)
    yield f"127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=30)


@pytest.mark.req("FR-062", "FR-070")
def test_deploy_sse_pushes_one_platform_image_and_prints_the_digest_the_registry_serves(
        image: sse_image.Built, registry: str) -> None:
    env = {**os.environ, "REGISTRY": registry, "COLLECTOR_LAYER": "standin", "ENVIRONMENT": "dev",
           "IMAGE_TAG": "deploy-test", "PYTHON": sys.executable}
    result = subprocess.run(["bash", str(sse_image.SSE_DIR / "deploy.sh")], cwd=sse_image.REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    digest = result.stdout.strip().splitlines()[-1].removeprefix('sse_image_digest = "').removesuffix('"')
    platform = sse_image.platform_for(sse_image.lambda_architecture("dev"))
    assert f"({platform})" in result.stdout and "stand-in collector" in result.stderr

    manifest_url = f"http://{registry}/v2/sentiment-analyzer-dev-sse/manifests/deploy-test"
    single = "application/vnd.docker.distribution.manifest.v2+json"
    head = subprocess.run(["curl", "-sfI", "-H", f"Accept: {single}", manifest_url],
                          capture_output=True, text=True, timeout=30)
    served = {name.strip().lower(): value.strip() for name, _, value in
              (line.partition(":") for line in head.stdout.splitlines() if ":" in line)}
    assert served["docker-content-digest"] == digest
    # One image manifest, not an index (no attestation manifests): what Lambda accepts.
    indexes = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json"
    body = subprocess.run(["curl", "-sf", "-H", f"Accept: {indexes}, {single}", manifest_url],
                          capture_output=True, text=True, timeout=30)
    manifest = json.loads(body.stdout)
    assert manifest["mediaType"] == single and "manifests" not in manifest
    config = subprocess.run(["curl", "-sf", f"http://{registry}/v2/sentiment-analyzer-dev-sse/blobs/"
                             f"{manifest['config']['digest']}"], capture_output=True, text=True, timeout=30)
    assert f"linux/{json.loads(config.stdout)['architecture']}" == platform
