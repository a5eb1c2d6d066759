"""scripts/docker_engine.py: a machine whose dockerd cannot start gets the reason, not a silent skip."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scripts.docker_engine import Engine, EngineUnavailable


@pytest.mark.req("FR-069")
def test_an_engine_that_cannot_start_raises_with_dockerds_own_reason(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "dockerd"  # what dockerd prints on a machine without cgroups, then it exits
    fake.write_text("#!/bin/sh\necho 'failed to start daemon: Devices cgroup is not mounted' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    with pytest.raises(EngineUnavailable) as why:
        Engine.start(tmp_path / "engine", timeout_s=20)
    assert "dockerd did not start (exit 1)" in str(why.value)
    assert "Devices cgroup is not mounted" in str(why.value)
