"""Contract: the local X-Ray daemon (xray/daemon.py) as the SDKs use it.

"Send segment documents to the X-Ray daemon": a UDP datagram holding the header
`{"format": "json", "version": 1}`, a newline, then one segment document; the daemon batches them into
PutTraceSegments: https://docs.aws.amazon.com/xray/latest/devguide/xray-api-sendingdata.html
(The 64 KB document limit is the segment sink's, tests/devstack/test_trace_pipeline.py: a UDP datagram
cannot carry more than 65,507 bytes anyway.)
"""

from __future__ import annotations

import json
import socket
import time

import pytest

from devstack.xray.pipeline import TracePipeline
from lib.tracing.header import new_entity_id, new_trace_id


def _send(pipeline: TracePipeline, payload: bytes) -> None:
    host, _, port = pipeline.daemon.address.partition(":")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(payload, (host, int(port)))


def _document(trace_id: str, **extra: object) -> dict[str, object]:
    now = time.time()
    return {"name": "contract", "id": new_entity_id(), "trace_id": trace_id, "start_time": now, "end_time": now,
            **extra}


@pytest.mark.req("FR-017")
@pytest.mark.parametrize("header", [b'{"format": "json", "version": 1}', b'{"format":"json","version":1}'])
def test_a_datagram_with_the_protocol_header_reaches_put_trace_segments(trace_pipeline: TracePipeline,
                                                                        header: bytes) -> None:
    """The header exactly as AWS's page shows it (with spaces) and as the Python SDK sends it (without)."""
    trace_id = new_trace_id()
    document = _document(trace_id)
    _send(trace_pipeline, header + b"\n" + json.dumps(document).encode())
    [stored] = trace_pipeline.documents(trace_id)
    assert stored["id"] == document["id"]


@pytest.mark.req("FR-018")
@pytest.mark.parametrize("prefix", [b"", b'{"format": "xml", "version": 1}\n'])
def test_a_datagram_without_the_protocol_header_is_dropped_and_counted(trace_pipeline: TracePipeline,
                                                                      prefix: bytes) -> None:
    trace_id = new_trace_id()
    before = trace_pipeline.daemon.stats.malformed
    _send(trace_pipeline, prefix + json.dumps(_document(trace_id)).encode())
    assert trace_pipeline.documents(trace_id) == []
    assert trace_pipeline.daemon.stats.malformed == before + 1
