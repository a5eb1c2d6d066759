"""Property-based: arbitrary `X-Amzn-Trace-Id` values into everything that reads one.

The parser, the edge rule (the deployed CloudFront Function `strip_sampling.js`, run by node as the
devstack edge runs it), the API Gateway stage in front of the dashboard, the Lambda service's
`Invocation`, and the SSE function behind its Function URL (the real bootstrap on the local Runtime
API). For any header: a typed error or a 4xx, never a 5xx; never a sampling decision forced by the
client (FR-035); never a malformed document (document_problems). Examples are derandomized: the
same ones every run.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devstack.aws.moto_server import MotoServer
from devstack.aws.resources import Resources
from devstack.edge.api_gateway import ApiGateway, GatewayRequest, stage_trace_header
from devstack.edge.cloudfront import readable_trace_header
from devstack.edge.cloudfront_function import CloudFrontFunction
from devstack.lambda_.invocation import Invocation, SamplingRule
from devstack.stack import load_stack
from devstack.xray.pipeline import TracePipeline
from devstack.xray.trace_reader import document_problems, render
from lib.tracing.header import MAX_HEADER_LENGTH, InvalidTraceHeaderError, TraceHeader, new_trace_id
from tests.integration.test_sse_stream import SseEnvironment

NEVER = SamplingRule(fixed_rate=0.0, reservoir_per_second=0)
ALWAYS = SamplingRule(fixed_rate=1.0, reservoir_per_second=1000)
PROPERTY = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
SLOW_PROPERTY = settings(PROPERTY, max_examples=15)

HEX = "0123456789abcdef"
hex_text = st.text(alphabet=HEX + "ABCDEFxyz-", min_size=0, max_size=30)
roots = st.one_of(
    st.builds(lambda e, r: f"1-{e}-{r}", st.text(HEX, min_size=8, max_size=8), st.text(HEX, min_size=24, max_size=24)),
    st.builds(lambda v, e, r: f"{v}-{e}-{r}", st.sampled_from(["0", "1", "2", "", "1-"]), hex_text, hex_text),
)
parents = st.one_of(st.text(HEX, min_size=16, max_size=16), hex_text)
sampled_values = st.sampled_from(["0", "1", "?", "", "true", "11", "1 ", " 1", "yes"])
field_values = st.text(alphabet=string.printable, max_size=40)
fields = st.one_of(
    st.builds(lambda v: f"Root={v}", roots),
    st.builds(lambda v: f"Parent={v}", parents),
    st.builds(lambda v: f"Sampled={v}", sampled_values),
    st.builds(lambda v: f"Self={v}", field_values),
    st.builds(lambda v: f"Lineage={v}", field_values),
    st.builds(lambda k, v: f"{k}={v}", st.text(string.ascii_letters, min_size=1, max_size=12), field_values),
    field_values,
)
structured = st.builds(lambda parts, sep: sep.join(parts), st.lists(fields, max_size=6),
                       st.sampled_from([";", "; ", " ;"]))
# Well-formed headers that carry a client decision: what a cost attack sends.
forcing = st.builds(lambda root, parent, sampled: f"Root={root};Parent={parent};Sampled={sampled}",
                    roots.filter(lambda r: r.startswith("1-")), st.text(HEX, min_size=16, max_size=16),
                    st.sampled_from(["1", "0", "?"]))
trace_headers = st.one_of(forcing, structured, st.text(max_size=MAX_HEADER_LENGTH + 20),
                          st.text(string.printable, min_size=MAX_HEADER_LENGTH - 5, max_size=MAX_HEADER_LENGTH + 40))


def unique_root(raw: str) -> str:
    """`raw` with its Root, when it has a readable one, replaced by a fresh trace id: derandomized
    examples repeat roots, and the tests that read a trace back must read only this example's."""
    try:
        root = TraceHeader.parse(raw).root
    except InvalidTraceHeaderError:
        return raw
    return raw.replace(root, new_trace_id())


# -- the parser and the edge rules ---------------------------------------------------------------------
@pytest.mark.req("FR-035", "FR-018", "FR-010")
@PROPERTY
@given(trace_headers)
def test_the_parser_is_total_a_header_or_a_typed_error(raw: str) -> None:
    try:
        header = TraceHeader.parse(raw)
    except InvalidTraceHeaderError:
        return
    assert TraceHeader.parse(header.format()) == header
    assert header.without_sampling().sampled is None
    assert "Sampled" not in header.without_sampling().format()


@pytest.fixture(scope="module")
def edge_function() -> Iterator[CloudFrontFunction]:
    with CloudFrontFunction() as function:
        yield function


def at_the_edge(function: CloudFrontFunction, raw: str) -> str | None:
    """The trace header strip_sampling.js forwards for `raw` (None: it removed the header)."""
    forwarded = function.viewer_request("GET", "/api/v2/stream", "", [("X-Amzn-Trace-Id", raw)]).headers
    values = [value for name, value in forwarded if name.lower() == "x-amzn-trace-id"]
    assert len(values) <= 1
    return values[0] if values else None


@pytest.mark.req("FR-035")
@PROPERTY
@given(trace_headers)
def test_neither_edge_rule_ever_forwards_the_clients_sampling_decision(edge_function: CloudFrontFunction,
                                                                      raw: str) -> None:
    forwarded = at_the_edge(edge_function, raw)  # whatever it is, it passes the edge (never a 400)
    if forwarded is not None:
        assert all(field.split("=")[0].strip().lower() != "sampled" for field in forwarded.split(";"))
        readable = readable_trace_header(forwarded)
        assert readable is None or readable.sampled is None
    at_the_stage = stage_trace_header(raw)  # API Gateway: an unreadable header starts a new trace
    assert at_the_stage.sampled is None
    assert TraceHeader.parse(at_the_stage.format()) == at_the_stage


# -- the API Gateway stage and the dashboard behind it ---------------------------------------------------
@pytest.fixture(scope="module")
def dashboard_stage(invoke: Any, trace_pipeline: TracePipeline, stack_resources: Resources) -> Iterator[ApiGateway]:
    config = boto3.resource("dynamodb").Table(stack_resources.tables["config"])
    config.put_item(Item={"pk": "ticker", "sk": "PROP", "name": "Property Test Corp."})
    yield ApiGateway(invoke, trace_pipeline.daemon.address)
    config.delete_item(Key={"pk": "ticker", "sk": "PROP"})


def _get_tickers(stage: ApiGateway, raw: str) -> Any:
    return stage.handle(GatewayRequest("GET", "/api/v2/tickers", headers={"X-Amzn-Trace-Id": raw,
                                                                           "Origin": "http://localhost:5173"}))


@pytest.mark.req("FR-035", "FR-015", "FR-018")
@PROPERTY
@given(raw=trace_headers)
def test_no_client_header_forces_a_sample_through_the_api_stage(
    dashboard_stage: ApiGateway, trace_pipeline: TracePipeline, raw: str
) -> None:
    dashboard_stage.sampling_rule = NEVER
    response = _get_tickers(dashboard_stage, unique_root(raw))
    assert response.status == 200, response.body
    assert {"ticker": "PROP", "name": "Property Test Corp."} in response.json()["tickers"]
    assert response.trace_header.sampled is False
    # The response names the trace without a decision, and nothing of it reached X-Ray.
    assert TraceHeader.parse(response.header("x-amzn-trace-id") or "").sampled is None
    assert trace_pipeline.documents(response.trace_header.root) == []


@pytest.mark.req("FR-058", "SC-001", "FR-018")
@SLOW_PROPERTY
@given(raw=trace_headers)
def test_whatever_the_header_a_sampled_request_records_well_formed_linked_documents(
    dashboard_stage: ApiGateway, trace_pipeline: TracePipeline, raw: str
) -> None:
    dashboard_stage.sampling_rule = ALWAYS
    raw = unique_root(raw)
    response = _get_tickers(dashboard_stage, raw)
    assert response.status == 200, response.body
    tree = trace_pipeline.tree(response.trace_header.root, expect_at_least=4)
    client_parent = stage_trace_header(raw).parent
    problems = [p for p in document_problems(tree) if not (client_parent and p.endswith(f"-> {client_parent}"))]
    assert problems == [], render(tree)
    assert tree.find("dynamodb"), render(tree)  # the function really ran, and its AWS call is traced


# -- the Lambda service's Invocation ---------------------------------------------------------------------
@pytest.mark.req("FR-059", "SC-026", "FR-018")
@PROPERTY
@given(raw=trace_headers)
def test_an_invocation_from_any_parsable_upstream_hands_the_function_a_well_formed_header(
    trace_pipeline: TracePipeline, raw: str
) -> None:
    try:
        upstream = TraceHeader.parse(unique_root(raw))
    except InvalidTraceHeaderError:
        return
    invocation = Invocation(load_stack().function("metrics"), trace_pipeline.daemon.address, upstream,
                            sampling_rule=NEVER)
    seen = TraceHeader.parse(invocation.trace_header.format())
    assert seen.root == upstream.root and seen.parent == invocation.function_segment_id
    # Lambda honours an upstream decision (that is why the edge strips it); with none, the rule decides.
    assert seen.sampled is (upstream.sampled if upstream.sampled is not None else False)
    invocation.finish()
    if invocation.sampled:
        tree = trace_pipeline.tree(upstream.root, expect_at_least=2)
        assert document_problems(tree) == [], render(tree)


# -- the SSE function behind its Function URL ------------------------------------------------------------
@pytest.fixture(scope="module")
def sse(trace_pipeline: TracePipeline, moto_server: MotoServer, stack_resources: Resources) -> Iterator[SseEnvironment]:
    environment = SseEnvironment(trace_pipeline, moto_server, stack_resources, trace_pipeline.receiver.endpoint,
                                 {"SSE_POLL_INTERVAL_S": "0.2", "SSE_HEARTBEAT_INTERVAL_S": "0.5"}).start()
    assert environment.open("/api/v2/stream/status").prelude(20)[0] == 200  # warm: imports done
    yield environment
    environment.stop()


def _through_the_edge(sse: SseEnvironment, function: CloudFrontFunction, raw: str, path: str,
                      echo: bool = False) -> Any:
    """What the edge's CloudFront Function does with the header, then the Function URL invocation, which
    reads the forwarded header or, unreadable, starts a new trace.

    The browser sends the previous response's trace id as `X-SSE-Previous-Trace-Id`; with `echo`
    the raw header goes there instead (the function validates it: a 400 when it is no trace id)."""
    forwarded = at_the_edge(function, raw)
    upstream = readable_trace_header(forwarded)
    headers = {"X-SSE-Session-Id": "property-session"}
    if forwarded is not None:
        headers["X-Amzn-Trace-Id"] = forwarded
    if upstream is not None:
        headers["X-SSE-Previous-Trace-Id"] = upstream.root
    if echo:
        headers["X-SSE-Previous-Trace-Id"] = raw
    return sse.open(path, headers=headers, upstream=upstream, timeout_s=2.0)


@pytest.mark.req("FR-035", "FR-048", "FR-018")
@SLOW_PROPERTY
@given(raw=trace_headers, echo=st.booleans())
def test_the_sse_function_answers_any_header_with_a_stream_or_a_400_never_a_forced_sample(
    sse: SseEnvironment, edge_function: CloudFrontFunction, raw: str, echo: bool
) -> None:
    sse.runtime.sampling_rule = NEVER
    call = _through_the_edge(sse, edge_function, raw, "/api/v2/stream", echo)
    try:
        status, headers = call.prelude(10)
        assert status in (200, 400), (status, call.error)
        assert call.error is None
        assert call.invocation.sampled is False
        if status == 400:
            assert call.wait(5) and json.loads(b"".join(call.chunks()))["error"] == "bad_request"
        else:
            assert dict(headers)["content-type"].startswith("text/event-stream")
    finally:
        call.close()


@pytest.mark.req("FR-058", "SC-010", "FR-018")
@settings(SLOW_PROPERTY, max_examples=8)
@given(raw=trace_headers, echo=st.booleans())
def test_a_sampled_sse_request_records_well_formed_documents_whatever_the_header(
    sse: SseEnvironment, edge_function: CloudFrontFunction, trace_pipeline: TracePipeline, raw: str, echo: bool
) -> None:
    sse.runtime.sampling_rule = ALWAYS
    call = _through_the_edge(sse, edge_function, unique_root(raw), "/api/v2/stream/status", echo)
    assert call.prelude(10)[0] in (200, 400) and call.wait(5) and call.error is None
    tree = trace_pipeline.tree(call.invocation.trace_header.root, expect_at_least=3)
    assert document_problems(tree) == [], render(tree)
