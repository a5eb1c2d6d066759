"""Trace paths broken the way production breaks them, beside the healthy pipeline (for the canary's
demo steps and tests): a function's environment is pointed at one of these instead of the healthy
daemon or collector (`LambdaService.update_environment`, or its `env_overrides`).

- `denied_daemon`: an X-Ray daemon whose `PutTraceSegments` X-Ray refuses (AccessDeniedException):
  in Lambda the daemon signs with the function's role, so a role without `xray:PutTraceSegments`
  loses every document the function's SDK sends, and only the daemon's log says so;
- `misrouted_collector`: an OTLP receiver (the ADOT collector stand-in) that accepts every span and
  exports it to X-Ray in another region, as an `awsxray` exporter whose `region` (or `endpoint`) names
  the wrong one does ("region: Send segments to AWS X-Ray service in a specific region",
  https://github.com/open-telemetry/opentelemetry-collector-contrib/tree/main/exporter/awsxrayexporter):
  nothing fails anywhere, the spans are just not where the function's region reads.

The Lambda service's own segments (`AWS::Lambda`, `AWS::Lambda::Function`) keep going to the healthy
daemon: in AWS the service writes them, not the function's daemon, role or collector.

Example (not run: needs a running TracePipeline):
    >>> with misrouted_collector(pipeline) as (endpoint, elsewhere):                    # doctest: +SKIP
    ...     service.update_environment("sse_streaming", {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": endpoint})
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3

from devstack.xray.daemon import XRayDaemon
from devstack.xray.otlp_receiver import OtlpReceiver
from devstack.xray.pipeline import TracePipeline
from devstack.xray.segment_sink import SegmentSink

WRONG_REGION = "us-west-2"  # the stack's region is us-east-1 (devstack.aws.moto_server.REGION)


@contextmanager
def denied_daemon(pipeline: TracePipeline) -> Iterator[str]:
    """A daemon whose PutTraceSegments calls X-Ray refuses; yields its address (AWS_XRAY_DAEMON_ADDRESS)."""
    xray = pipeline.client("xray")

    def deny(**_: Any) -> None:
        raise xray.exceptions.from_code("AccessDeniedException")(
            {"Error": {"Code": "AccessDeniedException",
                       "Message": "not authorized to perform: xray:PutTraceSegments"},
             "ResponseMetadata": {"HTTPStatusCode": 403}}, "PutTraceSegments")

    xray.meta.events.register("before-parameter-build.xray.PutTraceSegments", deny)
    sink = SegmentSink(xray).start()
    daemon = XRayDaemon(sink).start()
    try:
        yield daemon.address
    finally:
        daemon.stop()
        sink.stop()


@contextmanager
def misrouted_collector(pipeline: TracePipeline, region: str = WRONG_REGION) -> Iterator[tuple[str, Any]]:
    """A collector exporting to X-Ray in `region`; yields its OTLP endpoint and an X-Ray client of that
    region (where its spans do arrive)."""
    xray = boto3.client("xray", endpoint_url=pipeline.moto.endpoint, region_name=region,
                        aws_access_key_id="testing", aws_secret_access_key="testing")
    sink = SegmentSink(xray).start()
    receiver = OtlpReceiver(sink, pipeline.receiver.indexed_attributes).start()
    try:
        yield receiver.endpoint, xray
    finally:
        receiver.stop()
        sink.stop()
