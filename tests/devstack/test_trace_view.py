"""The gateway's local trace links: `/config.json` and `/devstack/traces/<id>`, read through moto's X-Ray API
(PutTraceSegments in, BatchGetTraces out), on a free port."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from devstack.edge.cloudfront import CloudFrontEdge
from devstack.xray.pipeline import TracePipeline
from devstack.xray.trace_view import LocalTraceViews


@pytest.fixture
def gateway(trace_pipeline: TracePipeline, tmp_path: Path) -> Iterator[CloudFrontEdge]:
    (tmp_path / "index.html").write_text("<!doctype html><title>dashboard</title>")
    server = CloudFrontEdge(None, None, tmp_path, port=0)
    server.trace_views = LocalTraceViews(trace_pipeline.xray)
    server.start()
    yield server
    server.stop()


def put_trace(pipeline: TracePipeline) -> tuple[str, dict[str, str]]:
    """A segment with a nested subsegment, and a second segment linked to it (another service, SNS-style)."""
    now = time.time()
    trace_id = f"1-{int(now):08x}-{secrets.token_hex(12)}"
    ids = {name: secrets.token_hex(8) for name in ("ingestion", "publish", "sns")}
    ingestion = {"trace_id": trace_id, "id": ids["ingestion"], "name": "ingestion", "start_time": now,
                 "end_time": now + 1, "origin": "AWS::Lambda::Function", "annotations": {"new_items": 2},
                 "subsegments": [{"id": ids["publish"], "name": "sns", "namespace": "aws", "start_time": now + 0.1,
                                  "end_time": now + 0.2, "fault": True}]}
    sns = {"trace_id": trace_id, "id": ids["sns"], "name": "news_items", "origin": "AWS::SNS",
           "parent_id": ids["publish"], "start_time": now + 0.15, "end_time": now + 0.16}
    pipeline.xray.put_trace_segments(TraceSegmentDocuments=[json.dumps(ingestion), json.dumps(sns)])
    return trace_id, ids


@pytest.mark.req("FR-010", "SC-008")
def test_the_trace_endpoint_returns_every_document_flat_as_the_x_ray_api_holds_them(
        gateway: CloudFrontEdge, trace_pipeline: TracePipeline) -> None:
    trace_id, ids = put_trace(trace_pipeline)

    response = requests.get(f"{gateway.url}/devstack/traces/{trace_id}", timeout=10)

    assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["trace_id"] == trace_id
    by_id = {doc["id"]: doc for doc in body["documents"]}
    assert set(by_id) == set(ids.values())  # the nested subsegment is a document of its own
    assert by_id[ids["publish"]]["parent_id"] == ids["ingestion"] and by_id[ids["publish"]]["fault"] is True
    assert by_id[ids["sns"]]["parent_id"] == ids["publish"]
    assert by_id[ids["ingestion"]]["annotations"] == {"new_items": 2}
    assert all("subsegments" not in doc for doc in body["documents"])


@pytest.mark.req("FR-010")
def test_an_unknown_or_malformed_trace_id_is_a_clear_4xx(gateway: CloudFrontEdge) -> None:
    unknown = f"1-{int(time.time()):08x}-{secrets.token_hex(12)}"
    missing = requests.get(f"{gateway.url}/devstack/traces/{unknown}", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"] == "trace_not_found"
    assert unknown in missing.json()["message"]

    for bad in ("1-xyz", "1-6760f3a1-0a1b2c3d4e5f60718293a4b5x", "..%2F..%2Fetc%2Fpasswd"):
        response = requests.get(f"{gateway.url}/devstack/traces/{bad}", timeout=10)
        assert response.status_code == 400 and response.json()["error"] == "invalid_trace_id", bad
    assert requests.post(f"{gateway.url}/devstack/traces/{unknown}", timeout=10).status_code == 405


@pytest.mark.req("FR-010")
def test_the_page_config_points_trace_links_at_the_local_trace_view(gateway: CloudFrontEdge) -> None:
    response = requests.get(f"{gateway.url}/config.json", timeout=10)
    assert response.status_code == 200
    assert response.json() == {"traceLinks": {"kind": "local", "view": "trace.html"}}
    assert requests.get(f"{gateway.url}/", timeout=10).text.startswith("<!doctype html>")  # static files unchanged
