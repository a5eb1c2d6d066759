#!/usr/bin/env python3
"""Run every benchmark and print its figures and ratios side by side (`make bench`).

    python benchmarks/run.py [--only flush,daemon] [--write benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import Row

BENCHMARKS = ["overhead", "init", "flush", "leaks", "live", "daemon", "sizing"]
# Everything from this line on in RESULTS.md is hand-written: `--write` keeps it.
HAND_WRITTEN = "<!-- hand-written below: kept by run.py --write -->"


def machine() -> str:
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if "model name" in line]
        cpu = names[0] if names else cpu
    system = f"{platform.system()} {platform.machine()}"
    return f"{system}, {os.cpu_count()} cores ({cpu}), Python {platform.python_version()}"


def load() -> str:
    """The machine's load average (1, 5, 15 min): the benchmarks share it with whatever else runs."""
    return " / ".join(f"{value:.1f}" for value in os.getloadavg())


def table(rows: list[Row]) -> str:
    lines = ["| benchmark | figure | value | target | met |", "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default=",".join(BENCHMARKS))
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    rows: list[Row] = []
    load_before = load()
    for name in args.only.split(","):
        module_path = Path(__file__).with_name(f"bench_{name}.py")
        if not module_path.exists():
            print(f"[{name}] not available yet", flush=True)
            continue
        started = time.monotonic()
        print(f"[{name}] running...", flush=True)
        result = importlib.import_module(f"benchmarks.bench_{name}").run()
        rows.extend(result)
        print(f"[{name}] done in {time.monotonic() - started:.0f} s", flush=True)
    output = table(rows)
    loads = f"load average (1 / 5 / 15 min) {load_before} at the start, {load()} at the end"
    print(f"\nMachine: {machine()}; {loads}\n\n{output}")
    if args.write:
        kept = ""
        if args.write.exists() and HAND_WRITTEN in args.write.read_text():
            kept = args.write.read_text().split(HAND_WRITTEN, 1)[1]
        args.write.write_text(
            "# Benchmark results\n\n"
            f"Command: `make bench` (`python benchmarks/run.py --write benchmarks/RESULTS.md`)\n\n"
            f"Machine: {machine()}; {loads}\n\nDate: {time.strftime('%Y-%m-%d')}\n\n{output}\n\n"
            f"{HAND_WRITTEN}{kept or chr(10)}"
        )
    return 0 if all(row.met is not False for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
