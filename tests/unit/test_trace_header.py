"""The one trace-header parser: typed errors for bad input, the edge rule that drops Sampled."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lib.tracing.header import InvalidTraceHeaderError, TraceHeader, new_entity_id, new_trace_id

ROOT = "1-5759e988-bd862e3fe1be46a994272793"


@pytest.mark.req("FR-010", "FR-011")
def test_parse_and_format_round_trip() -> None:
    header = TraceHeader.parse(f"Root={ROOT};Parent=53995c3f42cd8ad8;Sampled=1")
    assert (header.root, header.parent, header.sampled) == (ROOT, "53995c3f42cd8ad8", True)
    assert TraceHeader.parse(header.format()) == header


@pytest.mark.req("FR-035")
def test_edge_rule_removes_client_sampling_but_keeps_linkage() -> None:
    header = TraceHeader.parse(f"Root={ROOT};Parent=53995c3f42cd8ad8;Sampled=1")
    assert header.without_sampling().format() == f"Root={ROOT};Parent=53995c3f42cd8ad8"
    assert TraceHeader.parse(f"Root={ROOT};Sampled=?").sampled is None


@pytest.mark.req("FR-016")
def test_new_ids_have_xray_shapes() -> None:
    trace_id = new_trace_id(now=0x5759E988)
    assert trace_id.startswith("1-5759e988-") and len(trace_id) == 35
    assert len(new_entity_id()) == 16
    assert TraceHeader.new_root().sampled is None


@pytest.mark.req("FR-018")
@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        "Root=1-xyz",
        f"Root={ROOT};Parent=ZZZZ",
        f"Root={ROOT};Sampled=yes",
        f"Root={ROOT};Parent",
        "Parent=53995c3f42cd8ad8",
        f"Root={ROOT};" + "x=" * 200,
    ],
)
def test_malformed_headers_raise_a_typed_error(value: str) -> None:
    with pytest.raises(InvalidTraceHeaderError):
        TraceHeader.parse(value)


@pytest.mark.req("FR-035")
@given(st.text(max_size=300))
def test_arbitrary_text_either_parses_without_sampling_after_the_edge_or_raises_typed(value: str) -> None:
    try:
        header = TraceHeader.parse(value)
    except InvalidTraceHeaderError:
        return
    assert header.without_sampling().sampled is None
    assert "Sampled" not in header.without_sampling().format()
