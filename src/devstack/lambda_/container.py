"""The SSE function's execution environment as its container image, run the way Lambda runs it.

One `ContainerRuntime` is one execution environment (it has `RuntimeProcess`'s surface: `start`,
`stop`, `exit_code`, `output`, `pid`, so `LambdaService` scales it out the same way). What Lambda
does, and this does:

- The container: `docker run --read-only --tmpfs /tmp` (Lambda's only writable path is /tmp), the
  image's own non-root user, the Lambda environment variables (the image's ENV is left alone:
  host paths such as PATH, PYTHONPATH, LAMBDA_TASK_ROOT are not passed), `AWS_LAMBDA_RUNTIME_API`
  pointing at this environment's endpoint on the devstack's Runtime API (host network: the
  engine here has no bridge). `scripts/sse_image.run_argv` builds the argv.
- Init, in Lambda's order (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-extensions-api.html,
  "Init phase": extension init, then runtime init): every executable in `/opt/extensions` is
  started and must register through the Extensions API; only then does the runtime start, as the
  image's `ENTRYPOINT` with the image command (the handler, `image_config.command`) as its
  arguments (https://docs.aws.amazon.com/lambda/latest/dg/images-create.html). In Lambda the
  sandbox's init process starts both; here the container's first process only holds the sandbox
  open and the devstack starts the extensions and the runtime in it with `docker exec`.
- Shutdown: SHUTDOWN (`spindown`) to the extensions, which get the Shutdown phase's 2,000 ms to
  exit; then the container is killed, runtime and all, as Lambda ends the sandbox.

The stand-in collector extension (docker/sse/standin-collector) takes the function's OTLP on a port
of its own (`STANDIN_COLLECTOR_LISTEN`, unique per container: containers share the host's network)
and forwards it to the devstack's receiver (`STANDIN_COLLECTOR_UPSTREAM`), so the spans cross the
container boundary as they cross it in Lambda.

Example (not run: needs a docker engine and the built image):
    >>> images = ContainerImage.prepare()                                           # doctest: +SKIP
    >>> ContainerRuntime(runtime, images.tag, lambda_env, receiver.endpoint).start() # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType, TracebackType
from typing import IO, Any

from devstack.lambda_.runtime_api import EnvironmentEndpoint, RuntimeApi
from devstack.stack import REPO_ROOT

EXTENSIONS_DIR = "/opt/extensions"  # where Lambda looks for external extensions in an image
IMAGE_TAG = "sentiment-analyzer-sse:devstack"
# The host's side of the process runner's environment: meaningless inside the image, whose ENV sets its own.
HOST_ONLY_VARIABLES = frozenset({"PATH", "HOME", "LANG", "TMPDIR", "PYTHONPATH", "LAMBDA_TASK_ROOT",
                                 "DEVSTACK_DIR", "PYTHONUNBUFFERED"})
REGISTER_TIMEOUT_S = 60.0
DOCKER_TIMEOUT_S = 60.0
# Lambda allocates CPU in proportion to memory: 1,769 MB is one vCPU
# (https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html).
MB_PER_VCPU = 1769


class ContainerUnavailable(RuntimeError):
    """No docker engine, or the image cannot be built here; the message says why."""


def scripts_module(name: str) -> ModuleType:
    """`scripts/<name>.py` (the image build and the engine live there, beside deploy.sh)."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.append(str(REPO_ROOT))
    return importlib.import_module(f"scripts.{name}")


@dataclass
class ContainerImage:
    """The engine (started here, or found running) and the built image: `prepare`, then `close`."""

    engine: Any  # scripts.docker_engine.Engine
    tag: str
    entrypoint: list[str]
    how: str  # one line for the console: engine, base, size

    @classmethod
    def prepare(cls, tag: str = IMAGE_TAG, install: bool = False) -> ContainerImage:
        """Start (or find) a docker engine and build the image from the committed Dockerfile (cached).
        Without `install`, a machine with no docker at all is told so rather than given one by apt."""
        sse_image, docker_engine = scripts_module("sse_image"), scripts_module("docker_engine")
        if not install and not os.environ.get("DOCKER_HOST") and not (shutil.which("docker") and
                                                                      shutil.which("dockerd")):
            raise ContainerUnavailable("docker is not installed (apt-get install docker.io; "
                                       "--sse-runtime container installs it)")
        try:
            engine = docker_engine.Engine.start(sse_image.cache_dir() / "engine")
        except (docker_engine.EngineUnavailable, FileNotFoundError) as why:
            raise ContainerUnavailable(f"no docker engine: {why}") from why
        os.environ["DOCKER_HOST"] = engine.host  # the docker CLI of this process and its children
        try:
            built = sse_image.build(tag, sse_image.standin_layer(), quiet=True)
        except (subprocess.CalledProcessError, RuntimeError) as why:
            engine.stop()
            detail = getattr(why, "stderr", "") or str(why)
            raise ContainerUnavailable(f"the image did not build: {str(detail)[-600:]}") from why
        entrypoint = json.loads(sse_image.docker("image", "inspect", "--format", "{{json .Config.Entrypoint}}",
                                                 tag).stdout)
        how = (f"engine {engine.host}{' (started here)' if engine.process else ''}, "
               f"{built.base.how}, {built.size_bytes / 1_000_000:.0f} MB")
        return cls(engine, tag, list(entrypoint), how)

    def close(self) -> None:
        """Stop the engine if `prepare` started it (an engine found running is left alone)."""
        self.engine.stop()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def lambda_limits(memory_mb: int) -> list[str]:
    """`docker run` flags that size a container as Lambda sizes a function of `memory_mb`: that much
    memory for every process in the sandbox (runtime and extensions together), no swap, and the CPU
    share Lambda's ratio gives.

    >>> lambda_limits(128)
    ['--memory', '128m', '--memory-swap', '128m', '--cpus', '0.072']
    """
    return ["--memory", f"{memory_mb}m", "--memory-swap", f"{memory_mb}m", "--cpus", f"{memory_mb / MB_PER_VCPU:.3f}"]


def container_environment(function_env: Mapping[str, str], runtime_api: str, collector_listen: str,
                          receiver_endpoint: str) -> dict[str, str]:
    """The container's environment: the Lambda variables, this environment's Runtime API, and the
    collector's two ends (the function exports to the extension, the extension to the receiver).

    >>> env = container_environment({"PATH": "/usr/bin", "AWS_REGION": "us-east-1"}, "127.0.0.1:9001",
    ...                             "127.0.0.1:4400", "http://127.0.0.1:4318/v1/traces")
    >>> sorted(env)  # doctest: +NORMALIZE_WHITESPACE
    ['AWS_LAMBDA_RUNTIME_API', 'AWS_REGION', 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', 'STANDIN_COLLECTOR_LISTEN',
     'STANDIN_COLLECTOR_UPSTREAM']
    >>> env["STANDIN_COLLECTOR_UPSTREAM"], env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
    ('http://127.0.0.1:4318', 'http://127.0.0.1:4400/v1/traces')
    """
    receiver = urllib.parse.urlsplit(receiver_endpoint)
    env = {key: value for key, value in function_env.items() if key not in HOST_ONLY_VARIABLES}
    env.update({
        "AWS_LAMBDA_RUNTIME_API": runtime_api,
        "STANDIN_COLLECTOR_LISTEN": collector_listen,
        "STANDIN_COLLECTOR_UPSTREAM": f"{receiver.scheme}://{receiver.netloc}",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://{collector_listen}{receiver.path}",
    })
    return env


class ContainerRuntime:
    """One execution environment of an image function: the container, its extensions, its runtime."""

    def __init__(self, runtime: RuntimeApi, image: ContainerImage, function_env: Mapping[str, str],
                 receiver_endpoint: str, keep_lines: int = 500, memory_mb: int | None = None):
        self.runtime = runtime
        self.memory_mb = memory_mb  # None: the host's memory and CPU (the devstack); else Lambda's sizing
        self.image = image
        self.function_env = dict(function_env)
        self.receiver_endpoint = receiver_endpoint
        self.name = f"sa-sse-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.output: deque[str] = deque(maxlen=keep_lines)
        self.extensions: list[str] = []
        self.endpoint: EnvironmentEndpoint | None = None
        self._sandbox: subprocess.Popen[bytes] | None = None
        self._extension_processes: list[subprocess.Popen[bytes]] = []
        self._runtime_process: subprocess.Popen[bytes] | None = None
        self._readers: list[threading.Thread] = []
        self.init_started_at: float | None = None  # monotonic: the first extension spawned

    @property
    def pid(self) -> int | None:
        return None if self._runtime_process is None else self._runtime_process.pid

    def start(self) -> ContainerRuntime:
        sse_image = scripts_module("sse_image")
        self.endpoint = self.runtime.open_environment()
        try:
            # Where the extension exports: the function's configured collector endpoint when it has one (a
            # fault step points it elsewhere), else the devstack's receiver.
            upstream = self.function_env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", self.receiver_endpoint)
            env = container_environment(self.function_env, self.endpoint.address, f"127.0.0.1:{free_port()}",
                                        upstream)
            # The sandbox: the container, its first process only holding it open.
            argv = sse_image.run_argv(self.image.tag, env, command=["infinity"], name=self.name)
            limits = [] if self.memory_mb is None else lambda_limits(self.memory_mb)
            argv[argv.index(self.image.tag):argv.index(self.image.tag)] = ["--entrypoint", "sleep", *limits]
            self._sandbox = self._spawn(argv, "sandbox")
            self._wait_running()
            # Extension init: every executable in /opt/extensions, each registering.
            self.extensions = self._list_extensions()
            self.init_started_at = time.monotonic()  # Lambda's Init phase starts with extension init
            for path in self.extensions:
                self._extension_processes.append(self._spawn(["docker", "exec", self.name, path], path))
            if not self.endpoint.extensions.wait_registered(len(self.extensions), REGISTER_TIMEOUT_S):
                raise ContainerUnavailable(
                    f"extensions {self.extensions} did not all register within {REGISTER_TIMEOUT_S:.0f} s "
                    f"(registered: {self.endpoint.extensions.registered()}): {' | '.join(self.output)[-800:]}")
            # Runtime init: ENTRYPOINT + the image command (the handler).
            command = [*self.image.entrypoint, sse_image.handler_command()]
            self._runtime_process = self._spawn(["docker", "exec", self.name, *command], "runtime")
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, argv: list[str], label: str) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert process.stdout is not None
        reader = threading.Thread(target=self._read, args=(process.stdout, label), name=f"container-{label}",
                                  daemon=True)
        reader.start()
        self._readers.append(reader)
        return process

    def _read(self, stream: IO[bytes], label: str) -> None:
        for line in stream:
            text = line.decode("utf-8", errors="replace").rstrip()
            self.output.append(text if label == "runtime" else f"[{label}] {text}")

    def _docker(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=DOCKER_TIMEOUT_S, check=False)

    def _wait_running(self) -> None:
        deadline = time.monotonic() + DOCKER_TIMEOUT_S
        while self._docker("inspect", "--format", "{{.State.Running}}", self.name).stdout.strip() != "true":
            if (self._sandbox is not None and self._sandbox.poll() is not None) or time.monotonic() > deadline:
                raise ContainerUnavailable(f"container {self.name} did not start: {' | '.join(self.output)[-800:]}")
            time.sleep(0.1)

    def _list_extensions(self) -> list[str]:
        listed = self._docker("exec", self.name, "find", EXTENSIONS_DIR, "-maxdepth", "1", "-type", "f",
                              "-perm", "-u+x")
        if listed.returncode != 0:
            raise ContainerUnavailable(f"cannot list {EXTENSIONS_DIR}: {listed.stderr.strip()}")
        return sorted(listed.stdout.split())

    def exit_code(self, timeout_s: float = 0.0) -> int | None:
        """The runtime's exit code once it ended (waiting up to `timeout_s`), else None."""
        if self._runtime_process is None:
            return None
        try:
            return self._runtime_process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout_s: float = 5.0) -> None:
        """SHUTDOWN to the extensions (their 2 s to exit), then the container goes, runtime and all."""
        if self.endpoint is not None and self.extensions:
            deadline_ms = self.endpoint.extensions.shutdown("spindown")
            for path, process in zip(self.extensions, self._extension_processes, strict=False):
                try:
                    code = process.wait(max(0.0, deadline_ms / 1000 - time.time()))
                    self.output.append(f"[devstack] SHUTDOWN: extension {path} exited {code}")
                except subprocess.TimeoutExpired:
                    self.output.append(f"[devstack] SHUTDOWN: extension {path} still running at the deadline")
        if self._sandbox is not None:
            self._docker("kill", self.name)  # --rm removes it
        for process in [*self._extension_processes, *([self._runtime_process] if self._runtime_process else []),
                        *([self._sandbox] if self._sandbox else [])]:
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for reader in self._readers:
            reader.join(timeout_s)
        if self.endpoint is not None:
            self.runtime.close_environment(self.endpoint)

    def shutdown_outcomes(self) -> list[int | None]:
        """Each extension's exit code (None: still running)."""
        return [process.poll() for process in self._extension_processes]

    def __enter__(self) -> ContainerRuntime:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()
