#!/usr/bin/env python3
"""Build the SSE Lambda image from the committed docker/sse/Dockerfile, and run it the way Lambda does.

The Dockerfile is used unchanged; only its BASE_IMAGE argument varies. The base is the lock's
BASE_IMAGE when the engine has it or can pull it; otherwise (no registry reachable) a Debian trixie
root filesystem made by `debootstrap` (Python 3.13, as the function needs) and `docker import`ed.
The tarball and the imported image are cached, keyed by what went into them, so a second build on
one machine neither debootstraps nor imports again; the engine's layer cache does the rest.

The collector extension comes from a layer zip checked against a lock file's SHA-256 by the
Dockerfile's first stage (unpack-layer.sh): the real ADOT layer (docker/sse/collector-layer.lock,
fetched by deploy.sh) or the STAND-IN (docker/sse/standin-collector/, pinned by its own lock), which
local builds and tests use. The build context is staged with exactly the files the Dockerfile COPYs,
the chosen zip and lock in the places it expects them.

    python scripts/sse_image.py build [--layer standin|real] [--tag T] [--platform linux/amd64]
    python scripts/sse_image.py platform          # linux/amd64 or linux/arm64, from Terraform
    python scripts/sse_image.py pin-standin       # rewrite the stand-in's lock after editing it

Example (a test, phase 2's devstack):
    >>> built = build(tag="sse:local", layer=standin_layer())   # doctest: +SKIP
    >>> run_argv(built.tag, env={"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001"})  # doctest: +SKIP
    ['docker', 'run', '--rm', '--read-only', '--tmpfs', '/tmp', '--network', 'host', ...]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SSE_DIR = REPO_ROOT / "docker" / "sse"
DOCKERFILE = SSE_DIR / "Dockerfile"
REAL_LOCK = SSE_DIR / "collector-layer.lock"
STANDIN_DIR = SSE_DIR / "standin-collector"
STANDIN_LOCK = STANDIN_DIR / "collector-layer.lock"
# Where the Dockerfile's first stage expects the zip and the lock, relative to the build context.
CONTEXT_ZIP = Path("docker/sse/.layer/collector-layer.zip")
CONTEXT_LOCK = Path("docker/sse/collector-layer.lock")
TERRAFORM = REPO_ROOT / "infrastructure" / "terraform"
SSE_FUNCTION = "sse_streaming"

# The debootstrap base: Debian trixie carries Python 3.13 (the function's runtime); python3-pip for the
# dependencies stage (pip --target skips PEP 668's externally-managed check), passwd for `useradd`.
DEBOOTSTRAP = {
    "suite": "trixie",
    "variant": "minbase",
    "include": ["python3", "python3-pip", "passwd", "ca-certificates"],
    "mirror": "http://deb.debian.org/debian",
    "root_mode": "0755",
}
BASE_REPOSITORY = "sentiment-analyzer-sse-base"
LOCAL_CA_DIR = Path("/usr/local/share/ca-certificates")
# Lambda's architectures (infrastructure/terraform variable lambda_architecture) -> docker / Debian names.
PLATFORMS = {"x86_64": "linux/amd64", "arm64": "linux/arm64"}
DEBIAN_ARCHES = {"linux/amd64": "amd64", "linux/arm64": "arm64"}


def cache_dir() -> Path:
    """SSE_IMAGE_CACHE, else $XDG_CACHE_HOME (or ~/.cache)/sentiment-analyzer/sse-image."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sentiment-analyzer" / "sse-image"
    path = Path(os.environ.get("SSE_IMAGE_CACHE", default))
    path.mkdir(parents=True, exist_ok=True)
    return path


def log(message: str) -> None:
    print(f"sse-image: {message}", file=sys.stderr, flush=True)


def docker(*args: str, check: bool = True, capture: bool = True, timeout: float = 3600,
           env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The docker CLI (DOCKER_HOST from the environment selects the engine)."""
    return subprocess.run(["docker", *args], check=check, text=True, timeout=timeout,
                          capture_output=capture, env={**os.environ, **(env or {})})


# -- architecture --------------------------------------------------------------------------------
def lambda_architecture(environment: str = "dev") -> str:
    """The SSE function's architecture: `lambda_architecture` in environments/<env>.tfvars, else the
    variable's default in variables.tf (the one variable every function's `architectures` comes from).

    >>> lambda_architecture("dev")
    'x86_64'
    """
    import hcl2  # python-hcl2, a dev dependency: only the deploy path needs it

    tfvars = TERRAFORM / "environments" / f"{environment}.tfvars"
    if not tfvars.is_file():
        raise ValueError(f"no such environment: {tfvars}")

    def unquoted(value: object) -> str:  # python-hcl2 >= 7 keeps HCL's quotes on keys and strings
        return str(value).strip('"')

    values = {unquoted(key): value for key, value in hcl2.loads(tfvars.read_text()).items()}
    if "lambda_architecture" in values:
        return unquoted(values["lambda_architecture"])
    for block in hcl2.loads((TERRAFORM / "variables.tf").read_text())["variable"]:
        for name, body in block.items():
            if unquoted(name) == "lambda_architecture":
                return unquoted(body["default"])
    raise ValueError("variables.tf declares no lambda_architecture")


def platform_for(architecture: str) -> str:
    """`--platform` for a Lambda architecture: Lambda runs single-architecture images only
    (https://docs.aws.amazon.com/lambda/latest/dg/images-create.html: "must target only one of the
    architectures")."""
    if architecture not in PLATFORMS:
        raise ValueError(f"Lambda has no architecture {architecture!r} (x86_64 or arm64)")
    return PLATFORMS[architecture]


def engine_platform() -> str:
    """The engine's own platform (linux/amd64 on this machine)."""
    arch = docker("version", "--format", "{{.Server.Arch}}").stdout.strip()
    return f"linux/{arch}"


# -- the collector layer ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Layer:
    """A collector layer zip and the lock file whose LAYER_SHA256 the build checks it against."""

    name: str
    zip_path: Path
    lock_path: Path


def standin_zip_bytes() -> bytes:
    """The stand-in layer zip, byte-for-byte reproducible (sorted entries, fixed time and modes,
    stored), so its SHA-256 can be pinned in a committed lock like the real layer's."""
    files = sorted(path for path in STANDIN_DIR.rglob("*")
                   if path.is_file() and path.relative_to(STANDIN_DIR).parts[0] in {"extensions", "collector-config"})
    with tempfile.SpooledTemporaryFile() as buffer:
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
            for path in files:
                entry = zipfile.ZipInfo(path.relative_to(STANDIN_DIR).as_posix(), date_time=(2020, 1, 1, 0, 0, 0))
                entry.external_attr = (0o100755 if path.parent.name == "extensions" else 0o100644) << 16
                entry.create_system = 3  # unix: the modes above are meaningful
                archive.writestr(entry, path.read_bytes())
        buffer.seek(0)
        return buffer.read()


def standin_layer() -> Layer:
    """Write the stand-in zip into the cache and return it with its committed lock."""
    path = cache_dir() / "standin-collector-layer.zip"
    path.write_bytes(standin_zip_bytes())
    return Layer("stand-in collector (docker/sse/standin-collector)", path, STANDIN_LOCK)


def pin_standin() -> str:
    """Record the stand-in zip's SHA-256 in its lock (run after editing the stand-in; commit the lock)."""
    sha = hashlib.sha256(standin_zip_bytes()).hexdigest()
    text = re.sub(r"(?m)^LAYER_SHA256=.*$", f"LAYER_SHA256={sha}", STANDIN_LOCK.read_text())
    STANDIN_LOCK.write_text(text)
    return sha


def lock_value(lock: Path, key: str) -> str:
    values = [line.split("=", 1)[1] for line in lock.read_text().splitlines() if line.startswith(f"{key}=")]
    return values[-1] if values else ""


# -- the base image --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Base:
    image: str
    how: str  # a sentence for the build log: where the base came from


def image_exists(reference: str) -> bool:
    return docker("image", "inspect", reference, check=False).returncode == 0


def local_trust_anchors() -> list[Path]:
    """The machine's own CA certificates (Debian's /usr/local/share/ca-certificates): a machine whose
    egress passes a TLS-inspecting proxy trusts it there, and the dependencies stage's pip must too."""
    return sorted(LOCAL_CA_DIR.glob("*.crt")) if LOCAL_CA_DIR.is_dir() else []


def debootstrap_key(platform: str) -> str:
    """Everything that went into the debootstrap root filesystem, hashed: the cache key."""
    anchors = {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in local_trust_anchors()}
    recipe = json.dumps({**DEBOOTSTRAP, "arch": DEBIAN_ARCHES[platform], "ca": anchors}, sort_keys=True)
    return hashlib.sha256(recipe.encode()).hexdigest()[:16]


def remove_root_filesystem(root: Path) -> None:
    """Delete a debootstrap target, unless something is still mounted in it (an interrupted
    debootstrap can leave the host's /proc or /sys there: deleting through them is never safe)."""
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    left = [mount for mount in mounts if mount.startswith(f"{root}/")]
    if left:
        raise RuntimeError(f"debootstrap left {left} mounted: unmount them, then remove {root}")
    shutil.rmtree(root)


def debootstrap_base(platform: str) -> Base:
    """The trixie base: the engine's image if imported before, else the cached tarball imported, else
    debootstrap (a few minutes, once per machine and recipe)."""
    key = debootstrap_key(platform)
    tag = f"{BASE_REPOSITORY}:trixie-{key}"
    if image_exists(tag):
        return Base(tag, f"debootstrap trixie base {tag} (cached image)")
    tarball = cache_dir() / f"debootstrap-trixie-{key}.tar"
    how = f"debootstrap trixie base {tag} (imported from cached {tarball.name})"
    if not tarball.is_file():
        if engine_platform() != platform:
            raise RuntimeError(f"cannot debootstrap a {platform} base on a {engine_platform()} engine")
        if shutil.which("debootstrap") is None:
            raise RuntimeError("the default base cannot be pulled and debootstrap is missing (apt-get install it)")
        started = time.monotonic()
        root = tempfile.mkdtemp(dir=cache_dir())
        try:
            subprocess.run(["debootstrap", f"--variant={DEBOOTSTRAP['variant']}", f"--arch={DEBIAN_ARCHES[platform]}",
                            f"--include={','.join(DEBOOTSTRAP['include'])}", str(DEBOOTSTRAP["suite"]), root,
                            str(DEBOOTSTRAP["mirror"])], check=True, stdout=subprocess.DEVNULL, timeout=1800)
            for anchor in local_trust_anchors():
                shutil.copy2(anchor, Path(root) / "usr/local/share/ca-certificates" / anchor.name)
            subprocess.run(["chroot", root, "update-ca-certificates"], check=True, stdout=subprocess.DEVNULL,
                           timeout=120)
            os.chmod(root, 0o755)  # the image's / (mkdtemp makes it 0700: the non-root user could exec nothing)
            partial = tarball.with_suffix(".partial")
            subprocess.run(["tar", "-C", root, "--numeric-owner", "-cf", str(partial), "."], check=True, timeout=600)
            partial.rename(tarball)  # only a complete tarball is ever reused
        finally:
            remove_root_filesystem(Path(root))
        for stale in cache_dir().glob("debootstrap-*.tar"):
            if stale != tarball:  # another recipe's: never reused again
                stale.unlink()
        how = f"debootstrap trixie base {tag} (debootstrapped in {time.monotonic() - started:.0f} s)"
    docker("import", "--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           str(tarball), tag, timeout=600)
    return Base(tag, how)


def choose_base(platform: str, default: str | None = None) -> Base:
    """The lock's BASE_IMAGE when present or pullable; else the debootstrap base."""
    default = default or lock_value(REAL_LOCK, "BASE_IMAGE")
    if image_exists(default):
        return Base(default, f"default base {default} (present in the engine)")
    pulled = docker("pull", "--quiet", "--platform", platform, default, check=False, timeout=180)
    if pulled.returncode == 0:
        return Base(default, f"default base {default} (pulled)")
    log(f"the default base {default} cannot be pulled ({pulled.stderr.strip().splitlines()[-1:]}); using debootstrap")
    return debootstrap_base(platform)


# -- the build -----------------------------------------------------------------------------------
def dockerfile_sources() -> list[Path]:
    """The paths the Dockerfile COPYs from the build context (stage-to-stage COPYs excluded)."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    sources: list[Path] = []
    for line in text.splitlines():
        words = line.split()
        if words and words[0].upper() == "COPY" and not any(word.startswith("--from") for word in words):
            sources += [Path(word) for word in words[1:-1] if not word.startswith("--")]
    return sources


def stage_context(destination: Path, layer: Layer) -> Path:
    """A build context holding exactly what the Dockerfile COPYs, the layer's zip and lock where it expects them."""
    if destination.exists():
        shutil.rmtree(destination)
    for source in [DOCKERFILE.relative_to(REPO_ROOT), *dockerfile_sources()]:
        origin = {CONTEXT_ZIP: layer.zip_path, CONTEXT_LOCK: layer.lock_path}.get(source, REPO_ROOT / source)
        target = destination / source
        target.parent.mkdir(parents=True, exist_ok=True)
        if origin.is_dir():
            shutil.copytree(origin, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(origin, target)
    return destination


def has_buildx() -> bool:
    return docker("buildx", "version", check=False).returncode == 0


@dataclass(frozen=True)
class Built:
    tag: str
    base: Base
    platform: str
    size_bytes: int


def build_command(tag: str, platform: str, base: str, context: Path, buildx: bool) -> list[str]:
    """`docker build` for one platform and no attestations. Lambda accepts only single-architecture
    image manifests (images-create.html above); buildx >= 0.10 adds a provenance attestation by
    default, which turns the push into an image index Lambda rejects ("image manifest or layer media
    type ... is not supported"), so buildx gets --provenance=false; the classic builder makes none.
    Host networking: the engine here runs without a bridge, and the dependencies stage needs PyPI."""
    command = ["buildx", "build", "--provenance=false", "--load"] if buildx else ["build"]
    return [*command, "--network", "host", "--platform", platform, "--file", str(context / "docker/sse/Dockerfile"),
            "--build-arg", f"BASE_IMAGE={base}", "--tag", tag, str(context)]


def build(tag: str = "sentiment-analyzer-sse:local", layer: Layer | None = None, platform: str | None = None,
          base: Base | None = None, quiet: bool = False) -> Built:
    """Build the image; logs the base used and the image's size."""
    layer = layer or standin_layer()
    platform = platform or engine_platform()
    base = base or choose_base(platform)
    log(f"base: {base.how}")
    log(f"collector layer: {layer.name}, pinned by {layer.lock_path}")
    context = stage_context(cache_dir() / "context", layer)
    buildx = has_buildx()
    result = docker(*build_command(tag, platform, base.image, context, buildx), capture=quiet, check=False,
                    env={} if buildx else {"DOCKER_BUILDKIT": "0"})
    if result.returncode != 0:
        raise subprocess.CalledProcessError(result.returncode, result.args, result.stdout, result.stderr)
    size = int(docker("image", "inspect", "--format", "{{.Size}}", tag).stdout)
    log(f"image {tag} ({platform}): {size / 1_000_000:.0f} MB")
    return Built(tag, base, platform, size)


# -- running it as Lambda does ----------------------------------------------------------------------
def handler_command() -> str:
    """The image command Lambda passes to the ENTRYPOINT: the function's handler (stack.json)."""
    stack = json.loads((TERRAFORM / "stack.json").read_text())
    return str(stack["functions"][SSE_FUNCTION]["handler"])


def run_argv(image: str, env: Mapping[str, str], command: Sequence[str] | None = None,
             name: str | None = None) -> list[str]:
    """`docker run` argv that runs the image as Lambda does: ENTRYPOINT with the handler as its argument,
    read-only root filesystem with a writable /tmp (Lambda's only writable path), the image's non-root
    user, the given environment (AWS_LAMBDA_RUNTIME_API and the Lambda variables). Host networking:
    the engine has no bridge, and the Runtime API and the receiver listen on 127.0.0.1.

    >>> run_argv("sse:local", {"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001"})[-2:]
    ['sse:local', 'lambdas.sse_streaming.handler.lambda_handler']
    """
    argv = ["docker", "run", "--rm", "--read-only", "--tmpfs", "/tmp", "--network", "host"]
    if name:
        argv += ["--name", name]
    for key, value in sorted(env.items()):
        argv += ["--env", f"{key}={value}"]
    return [*argv, image, *(command if command is not None else [handler_command()])]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    build_parser = sub.add_parser("build")
    build_parser.add_argument("--tag", default="sentiment-analyzer-sse:local")
    build_parser.add_argument("--platform", help="default: the engine's")
    build_parser.add_argument("--layer", choices=["standin", "real"], default="standin")
    build_parser.add_argument("--layer-zip", type=Path, help="the real layer's zip (deploy.sh fetches it)")
    build_parser.add_argument("--lock", type=Path, default=REAL_LOCK, help="the real layer's lock")
    build_parser.add_argument("--base", help="default base image (default: the lock's BASE_IMAGE)")
    platform_parser = sub.add_parser("platform")
    platform_parser.add_argument("--environment", default="dev")
    sub.add_parser("pin-standin")
    args = parser.parse_args(argv)
    if args.action == "platform":
        print(platform_for(lambda_architecture(args.environment)))
    elif args.action == "pin-standin":
        print(pin_standin())
    else:
        if args.layer == "real" and args.layer_zip is None:
            parser.error("--layer real needs --layer-zip")
        layer = (Layer(f"ADOT collector layer ({lock_value(args.lock, 'LAYER_ARN')})", args.layer_zip, args.lock)
                 if args.layer == "real" else standin_layer())
        platform = args.platform or engine_platform()
        built = build(args.tag, layer, platform, choose_base(platform, args.base))
        print(built.tag)
    return 0


if __name__ == "__main__":
    sys.exit(main())
