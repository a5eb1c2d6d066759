"""SNS → Lambda delivery as SNS active tracing does it (FR-013): one trace id across the hop.

In AWS the publisher's X-Ray SDK puts `X-Amzn-Trace-Id` on the Publish request (the Tracer's
botocore patch does it; no message attribute is involved), SNS writes an `AWS::SNS` segment
under the publisher's Publish subsegment and invokes each subscribed function with that trace
(Parent = the SNS segment). moto delivers nothing to Lambda, so the devstack does the same:
`SnsCapture` reads each successful Publish (topic, message, trace header, MessageId) on a botocore
client; `SnsDelivery` writes the SNS segment and invokes the function subscribed to the topic in
the stack map, with the SNS → Lambda event Lambda would get.

SNS writes its segment only for a topic whose `tracing` is `Active` in the stack map, which is exactly
the set Terraform's X-Ray resource policy lets `sns.amazonaws.com` write for (`modules/data`:
`traced_topics`). Without that policy SNS records nothing, and a `PassThrough` topic only passes the
trace header on: https://docs.aws.amazon.com/xray/latest/devguide/xray-services-sns.html

Example (not run: needs the stack's topics and a Lambda service):
    >>> capture = SnsCapture().attach(sns_client())                      # doctest: +SKIP
    >>> invoke("ingestion", {})                                          # doctest: +SKIP
    >>> delivery = SnsDelivery(load_stack(), resources, daemon.address)  # doctest: +SKIP
    >>> for publication in capture.take(resources.topics["news_items"]):  # doctest: +SKIP
    ...     delivery.deliver(publication, invoke)
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qs

from devstack.aws.moto_server import REGION
from devstack.aws.resources import Resources
from devstack.lambda_.invocation import ACCOUNT_ID, UDP_HEADER, Invocation
from devstack.stack import Stack
from lib.tracing.header import TraceHeader, new_entity_id

TRACE_HEADER = "X-Amzn-Trace-Id"


@dataclass(frozen=True)
class Publication:
    """One successful Publish, as SNS received it."""

    topic_arn: str
    message: str
    subject: str | None
    message_id: str
    trace_header: TraceHeader | None  # None when the publisher was not traced
    published_at: float


class SnsCapture:
    """Records the successful Publish calls made through the botocore clients it is attached to."""

    def __init__(self) -> None:
        self._publications: list[Publication] = []
        self._in_flight = threading.local()
        self._lock = threading.Lock()
        self._id = f"sns-capture-{uuid.uuid4().hex}"

    def attach(self, client: Any) -> SnsCapture:
        client.meta.events.register("before-send.sns.Publish", self._before_send, unique_id=f"{self._id}-send")
        client.meta.events.register("after-call.sns.Publish", self._after_call, unique_id=f"{self._id}-call")
        return self

    def detach(self, client: Any) -> None:
        client.meta.events.unregister("before-send.sns.Publish", unique_id=f"{self._id}-send")
        client.meta.events.unregister("after-call.sns.Publish", unique_id=f"{self._id}-call")

    def _before_send(self, request: Any, **_: Any) -> None:
        # The prepared request: the X-Ray patch has injected the trace header by now.
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body or "")
        form = {key: values[0] for key, values in parse_qs(body).items()}
        raw_header = request.headers.get(TRACE_HEADER)
        if isinstance(raw_header, bytes):
            raw_header = raw_header.decode()
        self._in_flight.request = (form, TraceHeader.parse(raw_header) if raw_header else None)

    def _after_call(self, http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
        sent = getattr(self._in_flight, "request", None)
        self._in_flight.request = None
        if sent is None or http_response.status_code != 200:
            return
        form, header = sent
        publication = Publication(
            topic_arn=form["TopicArn"], message=form["Message"], subject=form.get("Subject"),
            message_id=str(parsed["MessageId"]), trace_header=header, published_at=time.time(),
        )
        with self._lock:
            self._publications.append(publication)

    def take(self, topic_arn: str | None = None) -> list[Publication]:
        """Remove and return what was published (to `topic_arn` only, when given), oldest first."""
        with self._lock:
            taken = [p for p in self._publications if topic_arn is None or p.topic_arn == topic_arn]
            self._publications = [p for p in self._publications if p not in taken]
        return taken


class Invoke(Protocol):
    """How a function is run: the signature of the test suite's `invoke` and of the devstack's runner."""

    def __call__(self, key: str, event: Any, upstream: TraceHeader | None = ...,
                 upstream_segment_written: bool = ...) -> tuple[Any, Invocation]: ...


class SnsDelivery:
    """Delivers publications to the function subscribed to their topic (stack map: trigger `sns`)."""

    def __init__(self, stack: Stack, resources: Resources, daemon_address: str):
        self._subscribers = {
            resources.topics[spec.trigger["topic"]]: key
            for key, spec in stack.functions.items() if spec.trigger.get("type") == "sns"
        }
        # The topics the X-Ray resource policy covers: the map's `tracing: Active` (modules/data traced_topics).
        self.traced_topics = frozenset(resources.topics[key] for key, topic in stack.topics.items()
                                       if topic.get("tracing") == "Active")
        host, _, port = daemon_address.partition(":")
        self._daemon = (host, int(port))

    def subscriber(self, topic_arn: str) -> str:
        return self._subscribers[topic_arn]

    def event(self, publication: Publication) -> dict[str, Any]:
        """The SNS → Lambda event for one publication (one record, as SNS always sends)."""
        subscription = f"{publication.topic_arn}:{uuid.uuid5(uuid.NAMESPACE_URL, publication.topic_arn)}"
        stamp = dt.datetime.fromtimestamp(publication.published_at, dt.UTC)
        return {"Records": [{
            "EventSource": "aws:sns",
            "EventVersion": "1.0",
            "EventSubscriptionArn": subscription,
            "Sns": {
                "Type": "Notification",
                "MessageId": publication.message_id,
                "TopicArn": publication.topic_arn,
                "Subject": publication.subject,
                "Message": publication.message,
                "Timestamp": stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z",
                "SignatureVersion": "1",
                "Signature": "bG9jYWwgZGV2c3RhY2sgZGVsaXZlcnk=",
                "SigningCertUrl": f"https://sns.{REGION}.amazonaws.com/SimpleNotificationService-local.pem",
                "UnsubscribeUrl": f"https://sns.{REGION}.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={subscription}",
                "MessageAttributes": {},
            },
        }]}

    def deliver(self, publication: Publication, invoke: Invoke) -> tuple[Any, Invocation]:
        """Invoke the subscriber in the publication's trace (errors propagate, as Lambda reports them)."""
        upstream = self._write_sns_segment(publication)
        return invoke(self.subscriber(publication.topic_arn), self.event(publication),
                      upstream=upstream, upstream_segment_written=upstream.parent is not None)

    def _write_sns_segment(self, publication: Publication) -> TraceHeader:
        """The `AWS::SNS` segment under the Publish subsegment; the Lambda's upstream is this segment.
        A topic the resource policy does not cover passes the publisher's header on unchanged."""
        header = publication.trace_header
        if header is None:  # an untraced publisher: SNS starts the trace
            return TraceHeader.new_root()
        if publication.topic_arn not in self.traced_topics or not header.sampled or header.parent is None:
            return header
        segment_id = new_entity_id()
        topic_name = publication.topic_arn.rsplit(":", 1)[-1]
        document = {
            "name": topic_name, "origin": "AWS::SNS", "id": segment_id, "trace_id": header.root,
            "parent_id": header.parent, "start_time": publication.published_at, "end_time": time.time(),
            "aws": {"account_id": ACCOUNT_ID, "region": REGION, "topic_arn": publication.topic_arn,
                    "message_id": publication.message_id},
        }
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.sendto((UDP_HEADER + json.dumps(document)).encode(), self._daemon)
        return TraceHeader(root=header.root, parent=segment_id, sampled=True)
