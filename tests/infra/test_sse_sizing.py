"""The SSE function's size: the stack map, the Terraform README's sizing table and benchmarks/RESULTS.md
agree (issue 23), and an out-of-memory kill of the SSE function is alarmed through a log metric filter."""

from __future__ import annotations

import re

import pytest

from benchmarks.bench_sizing import GOAL_HEADROOM, stack_lifetime_s, viewer_month_cost
from tests.infra.hcl import REPO, TERRAFORM, block, expression, module, stack

OBS = "observability"
SIZING_HEADING = "\n## Sizing the SSE function"
# Both forms of Lambda's out-of-memory record seen in public reports (alarms.tf cites them), and
# records of other failures the filter must not count.
OOM_RECORDS = [
    "REPORT RequestId: 8c1f Duration: 1893.12 ms Billed Duration: 1894 ms Memory Size: 128 MB "
    "Max Memory Used: 128 MB Status: error Error Type: Runtime.OutOfMemory",
    "RequestId: 45b36944 Error: Runtime exited with error: signal: killed\nRuntime.ExitError",
]
OTHER_RECORDS = [
    "2026-12-06T04:00:00.000Z 8c1f Task timed out after 900.00 seconds",
    "RequestId: 1234 Error: Runtime exited with error: exit status 1\nRuntime.ExitError",
    "REPORT RequestId: 8c1f Duration: 120004.10 ms Billed Duration: 120005 ms Memory Size: 128 MB "
    "Max Memory Used: 81 MB",
]


def table_rows(text: str, heading: str) -> list[list[str]]:
    """The body rows of the first markdown table after `heading`, as cells."""
    section = text.split(heading, 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines[2:]]


def sse() -> dict:
    return stack()["functions"]["sse_streaming"]


def readme_sizing() -> list[list[str]]:
    return table_rows((TERRAFORM / "README.md").read_text(), SIZING_HEADING)


def chosen_row() -> list[str]:
    chosen = [row for row in readme_sizing() if "**chosen**" in row[-1]]
    assert len(chosen) == 1, "README's sizing table: exactly one row is marked **chosen**"
    return chosen[0]


def megabytes(cell: str) -> float:
    return float(re.match(r"([\d,.]+) MB", cell)[1].replace(",", ""))


@pytest.mark.req("FR-062", "FR-090")
def test_the_chosen_row_of_the_readme_is_the_stack_maps_size_and_architecture():
    row = chosen_row()
    architecture = module("root").variables["lambda_architecture"]["default"]
    assert row[0] == architecture, "the chosen row is measured, on the architecture Terraform deploys"
    assert megabytes(row[1]) == sse()["memory_mb"], "stack.json's memory_mb is the README's chosen size"


@pytest.mark.req("FR-062", "FR-090")
def test_the_chosen_size_keeps_its_headroom_over_the_measured_peak_and_its_price_is_the_list_price():
    row = chosen_row()
    peak_mb = megabytes(row[7])  # peak RSS of function + extension
    assert sse()["memory_mb"] >= (1 + GOAL_HEADROOM) * peak_mb, "memory headroom under 30 % over the measured peak"
    for cells in readme_sizing():
        architecture = cells[0].split()[0]
        price = viewer_month_cost(int(megabytes(cells[1])), architecture, stack_lifetime_s())
        assert float(cells[10]) == pytest.approx(price, abs=0.005), f"{cells[:2]}: $ per viewer-month"


@pytest.mark.req("FR-062", "FR-090")
def test_the_readme_cost_estimate_and_results_md_carry_the_same_sizing():
    readme = (TERRAFORM / "README.md").read_text()
    estimate = re.search(r"^\| Lambda, SSE \|([^|]+)\|\s*([\d.]+)\s*\|$", readme, re.M)
    assert estimate, "README cost estimate: no 'Lambda, SSE' row"
    assert float(estimate[2]) == pytest.approx(float(chosen_row()[10]), abs=0.005)
    assert f"{sse()['memory_mb']} MB" in estimate[1]
    results = (REPO / "benchmarks" / "RESULTS.md").read_text()
    assert table_rows(results, "\n### 7. SSE sizing") == readme_sizing(), "RESULTS.md and the README disagree"


# ---------------------------------------------------------------- out-of-memory kills
def filter_terms(pattern: str) -> list[str]:
    """The OR-ed quoted terms of a filter pattern (`?"a" ?"b"`); anything else fails the test.
    https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/FilterAndPatternSyntax.html"""
    terms = re.findall(r'\?"([^"]+)"', pattern)
    assert re.sub(r'\?"[^"]+"', "", pattern).strip() == "" and terms, f"not an OR of quoted terms: {pattern}"
    return terms


@pytest.mark.req("FR-039", "FR-040")
def test_an_out_of_memory_kill_of_the_sse_function_is_counted_from_its_log_and_alarmed():
    obs = module(OBS)
    filters = obs.locals["log_metric_filters"]
    assert expression(filters).startswith("{for key in [local.sse_function_key]")
    text = expression(filters)
    assert "log_group = var.log_group_names[key]" in text
    pattern = re.search(r'pattern = "((?:[^"\\]|\\.)*)"', text)[1].replace('\\"', '"')
    terms = filter_terms(pattern)
    for record in OOM_RECORDS:
        assert any(term in record for term in terms), f"an OOM record the filter misses: {record}"
    for record in OTHER_RECORDS:
        assert not any(term in record for term in terms), f"counted as OOM: {record}"
    resource = obs.of_type("aws_cloudwatch_log_metric_filter")["this"]
    assert expression(resource["for_each"]) == "local.log_metric_filters"
    assert expression(resource["log_group_name"]) == "each.value.log_group"
    transformation = block(resource, "metric_transformation")[0]
    assert expression(transformation["name"]) == "each.value.metric"
    assert expression(transformation["namespace"]) == "each.value.namespace"
    assert transformation["value"] == "1" and "default_value" not in transformation  # no kill, no datapoint
    # The alarm reads exactly the filter's metric, and is one of the regional alarm set.
    alarms = expression(obs.locals["log_alarms"])
    assert "for name, filter in local.log_metric_filters : name" in alarms
    assert "namespace = filter.namespace, metric = filter.metric" in alarms
    # Sum >= 1 in one period, no datapoint: notBreaching: the shared alarm defaults, which it does not override.
    assert not {"statistic", "threshold", "missing", "comparison"} & set(re.findall(r"(\w+) =", alarms))
    defaults = obs.locals["alarm_defaults"]
    assert (defaults["statistic"], defaults["threshold"], defaults["missing"]) == ("Sum", 1, "notBreaching")
    assert "local.log_alarms" in expression(obs.locals["alarms"])
    assert "merge(local.alarm_defaults, alarm)" in expression(obs.locals["alarms"])
    # The log group is the function's own: the root passes lambda_functions' groups through.
    assert expression(module("root").module_calls[OBS]["log_group_names"]) == "module.lambda_functions.log_group_names"
    output = module("lambda_functions").outputs["log_group_names"]
    assert "aws_cloudwatch_log_group.this" in expression(output["value"])
