#!/usr/bin/env python3
"""A docker engine for the image tests: the one DOCKER_HOST names, else a dockerd of our own.

Our own engine is Debian's `docker.io` (installed with apt-get when missing; root needed), started
with its data under the cache dir (so images and the build cache survive between runs) and the
flags these machines need: vfs storage, no iptables, no bridge (containers use --network host).
Whoever starts it stops it (`Engine.stop`); an engine found running is left alone.

    >>> engine = Engine.start(Path("/root/.cache/sentiment-analyzer/sse-image/engine"))  # doctest: +SKIP
    >>> os.environ["DOCKER_HOST"] = engine.host; ...; engine.stop()                      # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

DOCKERD_FLAGS = ("--storage-driver=vfs", "--iptables=false", "--bridge=none")
APT_PACKAGES = ("docker.io", "debootstrap", "docker-registry")


class EngineUnavailable(RuntimeError):
    """No docker engine can run here; the message says why."""


def responds(host: str) -> bool:
    result = subprocess.run(["docker", "--host", host, "info", "--format", "{{.ServerVersion}}"],
                            capture_output=True, text=True, timeout=30, check=False)
    return result.returncode == 0


def install_packages(packages: tuple[str, ...] = APT_PACKAGES) -> None:
    """apt-get install whichever of the packages' commands are missing (Debian's registry)."""
    commands = {"docker.io": "dockerd", "debootstrap": "debootstrap", "docker-registry": "docker-registry"}
    missing = [name for name in packages if shutil.which(commands.get(name, name)) is None]
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise EngineUnavailable(f"{', '.join(missing)} missing and cannot be installed: needs root and apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *missing]):
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1200, check=False)
        if result.returncode != 0:
            raise EngineUnavailable(f"{' '.join(command)} failed: {result.stderr.strip()[-800:]}")


@dataclass
class Engine:
    host: str
    process: subprocess.Popen[bytes] | None  # None: an engine someone else runs

    @classmethod
    def start(cls, root: Path, timeout_s: float = 90) -> Engine:
        """DOCKER_HOST's engine if it answers; else dockerd with data under `root`."""
        if os.environ.get("DOCKER_HOST") and responds(os.environ["DOCKER_HOST"]):
            return cls(os.environ["DOCKER_HOST"], None)
        install_packages()
        root.mkdir(parents=True, exist_ok=True)
        host = f"unix://{root / 'docker.sock'}"
        if responds(host):  # a previous session's engine, still running: not ours to stop
            return cls(host, None)
        log_path = root / "dockerd.log"
        # exec-root holds containerd's sockets: a short path (unix socket paths are limited to 108 bytes)
        exec_root = Path("/run") / f"sa-sse-docker-{hashlib.sha256(str(root).encode()).hexdigest()[:8]}"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                ["dockerd", "--host", host, "--data-root", str(root / "data"), "--exec-root", str(exec_root),
                 "--pidfile", str(root / "dockerd.pid"), *DOCKERD_FLAGS],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while not responds(host):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                tail = log_path.read_text(errors="replace")[-1500:]
                raise EngineUnavailable(f"dockerd did not start (exit {process.poll()}); {log_path}:\n{tail}")
            time.sleep(0.5)
        return cls(host, process)

    def stop(self) -> None:
        """Stop the engine if this object started it (SIGTERM, then SIGKILL after 30 s)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
