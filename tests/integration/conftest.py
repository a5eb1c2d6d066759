"""The SSE image's session fixtures, shared by test_sse_image_build.py and test_sse_container.py: one
docker engine (scripts/docker_engine.py: found running, or started here and stopped at the end) and
one build of the image (scripts/sse_image.py, cached between runs) for the whole session."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from scripts import sse_image
from scripts.docker_engine import Engine, EngineUnavailable

TAG = "sentiment-analyzer-sse:test"


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    """A machine that cannot run dockerd fails the image tests with the reason; it never skips them."""
    try:
        started = Engine.start(sse_image.cache_dir() / "engine")
    except EngineUnavailable as why:
        pytest.fail(f"the SSE image tests need a docker engine and this machine cannot run one: {why}")
    previous = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = started.host
    yield started
    started.stop()
    if previous is None:
        os.environ.pop("DOCKER_HOST", None)
    else:
        os.environ["DOCKER_HOST"] = previous


@pytest.fixture(scope="session")
def image(engine: Engine) -> sse_image.Built:
    return sse_image.build(TAG, sse_image.standin_layer(), quiet=True)
