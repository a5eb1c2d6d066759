"""The demo's report: per step its checks, trace trees and runtime output; a summary over every trace;
the same as JSON for machines (`<dir>/demo-report.json`).

Example:
    >>> step = StepReport("1. news pipeline")
    >>> step.checks.append((True, "one trace"))
    >>> print(format_report([step], Summary(traces=1), []).splitlines()[5])
    PASS  1. news pipeline
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from devstack.xray.trace_view import trace_view_url
from lib.tracing.bounds import MAX_DOCUMENT_BYTES

REPORT_FILE = "demo-report.json"


class StepFailed(AssertionError):
    """A demo step cannot go on (a wait timed out, a run failed)."""


class CheckFailed(StepFailed):
    """A check did not hold (already recorded in the step's report)."""


@dataclass
class StepReport:
    title: str
    checks: list[tuple[bool, str]] = field(default_factory=list)
    traces: list[tuple[str, str]] = field(default_factory=list)  # (label, rendered tree)
    error: str | None = None
    functions: tuple[str, ...] = ()  # whose runtime output to show when the step fails
    logs: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None and all(ok for ok, _ in self.checks)

    def check(self, condition: bool, text: str) -> None:
        self.checks.append((bool(condition), text))
        if not condition:
            raise CheckFailed(text)


@dataclass
class Summary:
    traces: int = 0
    documents: int = 0
    faults: int = 0
    errors: int = 0
    orphans: int = 0
    client_linked: int = 0  # stage segments whose parent is the browser's Parent (a client writes no segment)
    largest_document: int = 0
    problems: list[str] = field(default_factory=list)
    recorded_lines: int = 0

    @property
    def ok(self) -> bool:
        return self.traces > 0 and self.orphans == 0 and not self.problems and \
            self.largest_document <= MAX_DOCUMENT_BYTES


def format_report(reports: list[StepReport], summary: Summary, notes: list[str], gateway_url: str = "") -> str:
    """The report; with `gateway_url`, each trace also names its page in the stack's trace view."""
    lines = ["", "=" * 100, "DEMO REPORT", "=" * 100]
    for report in reports:
        lines.append(f"\n{'PASS' if report.ok else 'FAIL'}  {report.title}")
        for ok, text in report.checks:
            lines.append(f"   {'✓' if ok else '✗'} {text}")
        if report.error:
            lines.append(f"   ✗ {report.error}")
        if report.logs:
            lines.append("   last runtime output:")
            lines.extend(f"     {line[:160]}" for line in report.logs)
        for label, rendered in report.traces:
            view = f"  {trace_view_url(gateway_url, rendered.split()[1])}" if gateway_url else ""
            lines.append(f"   {label}:{view}")
            lines.extend(f"     {line}" for line in rendered.splitlines())
    lines += ["", "-" * 100, "SUMMARY", "-" * 100,
              f"{'step':<86} result"]
    lines += [f"{report.title[:84]:<86} {'PASS' if report.ok else 'FAIL'}" for report in reports]
    lines += [
        "",
        f"traces (X-Ray API)          {summary.traces}",
        f"segment documents           {summary.documents}   (segments.jsonl: {summary.recorded_lines}; the canary's "
        "probe traces go to PutTraceSegments directly)",
        f"documents with fault/error  {summary.faults} / {summary.errors}",
        f"orphans                     {summary.orphans}   (stage segments linked to the browser's Parent: "
        f"{summary.client_linked})",
        f"largest document            {summary.largest_document} bytes (limit {MAX_DOCUMENT_BYTES})",
        f"document problems           {len(summary.problems)}",
    ]
    lines += [f"   {problem}" for problem in summary.problems[:20]]
    lines += [f"note: {note}" for note in notes]
    passed = sum(report.ok for report in reports)
    verdict = "ALL STEPS PASSED" if passed == len(reports) and summary.ok else \
        f"{len(reports) - passed} of {len(reports)} STEPS FAILED" if passed < len(reports) else "TRACE CHECKS FAILED"
    lines += ["", verdict, ""]
    return "\n".join(lines)


def write_report_json(path: Path, reports: list[StepReport], summary: Summary, client_parents: set[str],
                      ok: bool, gateway_url: str = "") -> None:
    """The report for machines (tests, CI): steps and checks, trace ids, summary, the clients' Parent ids."""
    path.write_text(json.dumps({
        "ok": ok,
        "steps": [{"title": r.title, "ok": r.ok, "error": r.error, "checks": [{"ok": ok_, "text": text}
                                                                             for ok_, text in r.checks],
                   "trace_ids": [rendered.split()[1] for _, rendered in r.traces],
                   "trace_views": [trace_view_url(gateway_url, rendered.split()[1]) for _, rendered in r.traces]
                   if gateway_url else []} for r in reports],
        "summary": {key: value for key, value in summary.__dict__.items()},
        "client_parents": sorted(client_parents),
    }, indent=2))
