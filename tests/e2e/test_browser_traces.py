"""The dashboard in headless Chromium against the local stack: traces from a click, live updates over SSE,
and a stream the test cuts, followed up by the next connection (read back through the X-Ray API)."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from devstack.xray.trace_reader import Node, TraceTree
from lib.tracing.header import TraceHeader

from .conftest import CuttableProxy, RunningStack, Tab

pytestmark = pytest.mark.e2e

LOAD_TIMEOUT_MS = 30_000
LIVE_TIMEOUT_MS = 60_000


def parent_chain(tree: TraceTree, node: Node) -> list[str]:
    """Origins / names from the root down to `node`."""
    by_id = {n.id: n for n in tree.nodes()}
    chain = []
    current: Node | None = node
    while current is not None:
        chain.append(str(current.document.get("origin") or current.document.get("name")))
        current = by_id.get(str(current.document.get("parent_id", "")))
    return chain[::-1]


def annotations(tree: TraceTree) -> dict[str, object]:
    found: dict[str, object] = {}
    for node in tree.nodes():
        found.update(node.document.get("annotations") or {})
    return found


@pytest.mark.req("SC-001", "FR-016", "FR-035")
def test_a_click_is_one_trace_from_the_browser_through_api_gateway_to_dynamodb(
        tab: Tab, e2e_stack: RunningStack) -> None:
    page = tab.page
    expect(page.get_by_test_id("ticker-card-NVDA")).to_be_visible(timeout=LOAD_TIMEOUT_MS)
    expect(page.get_by_test_id("trace-tickers")).to_contain_text("1-", timeout=LOAD_TIMEOUT_MS)
    expect(page.get_by_test_id("refresh")).to_be_enabled(timeout=LOAD_TIMEOUT_MS)
    clicked = time.time()
    page.get_by_test_id("refresh").click()
    expect(page.get_by_test_id("refresh")).to_be_enabled(timeout=LOAD_TIMEOUT_MS)

    # The click's first request is `GET /tickers`; its Root is the action's trace (live updates meanwhile
    # refresh single cards under traces of their own).
    first = next(r for r in tab.api_requests(since=clicked) if r.url.endswith("/api/v2/tickers"))
    root = TraceHeader.parse(first.headers["x-amzn-trace-id"]).root
    sent = [r for r in tab.api_requests(since=clicked) if TraceHeader.parse(r.headers["x-amzn-trace-id"]).root == root]
    paths = {r.url.split("/api/v2/", 1)[1].split("?")[0].split("/")[0] for r in sent}
    # every panel, one trace (the alert rules only once signed in: test_alert_rules_e2e)
    assert {"tickers", "sentiment", "timeseries", "items"} <= paths, paths
    headers = [TraceHeader.parse(r.headers["x-amzn-trace-id"]) for r in sent]
    assert all(header.sampled is None and header.parent for header in headers)  # no client decision
    parents = {header.parent for header in headers}
    assert len(parents) == len(sent)  # each request its own Parent
    assert {TraceHeader.parse(r.response_headers["x-amzn-trace-id"]).root for r in sent} == {root}
    expect(page.get_by_test_id("trace-tickers")).to_contain_text(root)

    def complete(tree: TraceTree) -> bool:
        stages = [n for n in tree.nodes() if n.document.get("origin") == "AWS::ApiGateway::Stage"]
        functions = [n for n in tree.nodes() if n.document.get("origin") == "AWS::Lambda::Function"]
        return len(stages) == len(sent) and len(functions) == len(sent)

    tree = e2e_stack.trace(root, until=complete)
    stages = [n for n in tree.nodes() if n.document.get("origin") == "AWS::ApiGateway::Stage"]
    assert {stage.document["parent_id"] for stage in stages} == parents  # each linked to its request's Parent
    dynamodb = [n for n in tree.nodes() if n.document.get("name") == "dynamodb"]
    assert dynamodb
    for call in dynamodb:
        chain = parent_chain(tree, call)
        assert chain[:3] == ["AWS::ApiGateway::Stage", "AWS::Lambda", "AWS::Lambda::Function"], chain
        assert chain[-1] == "dynamodb"
    assert {n.document["name"] for n in tree.nodes() if n.document.get("origin") == "AWS::Lambda::Function"} == {
        "sentiment-analyzer-local-dashboard"}
    assert tree.trace_id == root and all(doc["trace_id"] == root for doc in tree.documents)


@pytest.mark.req("FR-032", "FR-001", "FR-009")
def test_the_page_shows_a_live_update_that_arrived_over_sse(tab: Tab, e2e_stack: RunningStack) -> None:
    page = tab.page
    expect(page.get_by_test_id("connection-state")).to_have_attribute("data-state", "live", timeout=LOAD_TIMEOUT_MS)
    live = page.locator("[data-testid=feed-item][data-source=live]").first
    expect(live).to_be_visible(timeout=LIVE_TIMEOUT_MS)  # a new headline every 2 s, ingestion every 3 s
    item_id = live.get_attribute("data-item-id")
    assert item_id

    [stream] = tab.api_requests(stream=True)
    root = TraceHeader.parse(stream.headers["x-amzn-trace-id"]).root

    def dispatched(tree: TraceTree) -> bool:  # the stream's spans are flushed every poll cycle
        return any(n.document.get("name") == "sse.dispatch"
                   and (n.document.get("annotations") or {}).get("event_type") == "sentiment_update"
                   for n in tree.nodes())

    tree = e2e_stack.trace(root, until=dispatched)
    polls = [n for n in tree.nodes() if n.document.get("name") == "sse.poll"]
    assert polls and all("item_count" in (n.document.get("annotations") or {}) for n in polls)


@pytest.mark.req("SC-020", "FR-048", "FR-033", "FR-081")
def test_after_a_cut_the_next_connection_carries_session_and_previous_trace(
        tab: Tab, e2e_stack: RunningStack, proxy: CuttableProxy) -> None:
    page = tab.page
    state = page.get_by_test_id("connection-state")
    expect(state).to_have_attribute("data-state", "live", timeout=LOAD_TIMEOUT_MS)
    expect(page.locator("[data-testid=feed-item][data-source=live]").first).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    [first] = tab.api_requests(stream=True)
    first_root = TraceHeader.parse(first.response_headers["x-amzn-trace-id"]).root

    assert proxy.cut_streams() >= 1
    deadline = time.monotonic() + 30
    while len(tab.api_requests(stream=True)) < 2:
        assert time.monotonic() < deadline, "the page never reconnected"
        page.wait_for_timeout(200)
    expect(state).to_have_attribute("data-state", "live", timeout=LOAD_TIMEOUT_MS)

    second = tab.api_requests(stream=True)[1]
    assert second.headers["x-sse-session-id"] == first.headers["x-sse-session-id"]
    assert second.headers["x-sse-previous-trace-id"] == first_root
    assert second.headers["x-sse-connection-sequence"] == "2"
    assert second.headers.get("last-event-id")  # resume where the cut stream stopped
    second_root = TraceHeader.parse(second.headers["x-amzn-trace-id"]).root
    assert second_root != first_root

    tree = e2e_stack.trace(second_root, until=lambda t: "previous_trace_id" in annotations(t))
    found = annotations(tree)
    assert found["session_id"] == first.headers["x-sse-session-id"]
    assert found["previous_trace_id"] == first_root
    assert found["connection_sequence"] == 2
