"""The repository stands alone: a fresh clone of the committed HEAD, with nothing beside it, finds its
requirements in its own `specs/`, and no tracked file points at a path outside the repository."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# A path that leaves the repository: the team's folder beside it, or an absolute path on this machine.
OUTSIDE = re.compile(r"\.\./shared\b|(?<![\w.])/work/")


def _git(*args: str, cwd: Path = REPO) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def test_a_fresh_clone_with_nothing_beside_it_passes_the_traceability_check(tmp_path):
    clone = tmp_path / "empty" / "project"
    _git("clone", "--quiet", "--no-local", str(REPO), str(clone))
    assert _git("rev-parse", "HEAD", cwd=clone) == _git("rev-parse", "HEAD")
    assert sorted(p.name for p in clone.parent.iterdir()) == ["project"]  # no ../shared, nothing else

    result = subprocess.run(
        [sys.executable, "scripts/traceability.py", "--check"], cwd=clone, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout


def test_no_tracked_file_refers_to_a_path_outside_the_repository():
    offenders = []
    for name in _git("ls-files", "-z").split("\0"):
        path = REPO / name
        if (not name or not path.is_file() or path.is_symlink() or path == Path(__file__)
                or name.endswith(("package-lock.json", ".png"))):
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
            if OUTSIDE.search(line):
                offenders.append(f"{name}:{number}: {line.strip()[:100]}")
    assert offenders == []
