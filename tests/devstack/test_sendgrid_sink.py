"""The local SendGrid sink speaks the v3 Mail Send API as the `sendgrid` client expects (no AWS)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from python_http_client.exceptions import (
    BadRequestsError,
    InternalServerError,
    TooManyRequestsError,
    UnauthorizedError,
)
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import Mail

from devstack.fakes.sendgrid_sink import SendGridSink, SinkFailure


@pytest.fixture
def sink() -> Iterator[SendGridSink]:
    with SendGridSink(hang_s=2) as running:
        yield running


def client(sink: SendGridSink, key: str | None = None) -> SendGridAPIClient:
    return SendGridAPIClient(api_key=key or sink.api_key, host=sink.base_url)


def mail() -> Mail:
    return Mail(from_email="alerts@example.org", to_emails="someone@example.org", subject="Subject",
                plain_text_content="Body text")


def test_a_valid_email_is_accepted_with_202_and_recorded(sink: SendGridSink) -> None:
    response = client(sink).send(mail())
    assert response.status_code == 202 and response.body == b""
    [email] = sink.sent()
    assert response.headers["X-Message-Id"] == email.message_id
    assert (email.to, email.from_address, email.subject, email.text) == (
        ("someone@example.org",), "alerts@example.org", "Subject", "Body text")
    assert sink.statuses == [202]


def test_a_wrong_key_is_401(sink: SendGridSink) -> None:
    with pytest.raises(UnauthorizedError):
        client(sink, "SG.wrong").send(mail())
    assert sink.sent() == [] and sink.statuses == [401]


def test_an_incomplete_body_is_400_with_sendgrid_style_errors(sink: SendGridSink) -> None:
    with pytest.raises(BadRequestsError) as raised:
        client(sink).client.mail.send.post(request_body={"personalizations": [], "subject": ""})
    fields = {error["field"] for error in json.loads(raised.value.body)["errors"]}
    assert fields == {"personalizations", "from.email", "subject", "content"}


def test_failures_on_demand_then_recovery(sink: SendGridSink) -> None:
    sink.fail(SinkFailure.RATE_LIMITED, times=1)
    with pytest.raises(TooManyRequestsError) as raised:
        client(sink).send(mail())
    assert raised.value.headers["X-RateLimit-Remaining"] == "0"
    assert client(sink).send(mail()).status_code == 202
    sink.fail(SinkFailure.SERVER_ERROR)
    for _ in range(2):
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(urllib.request.Request(
                f"{sink.base_url}/v3/mail/send", data=b"{}", method="POST",
                headers={"Authorization": f"Bearer {sink.api_key}"}), timeout=2)
    sink.recover()
    assert client(sink).send(mail()).status_code == 202
    assert sink.statuses == [429, 202, 500, 500, 202]


@pytest.mark.req("FR-028")
def test_a_failure_scoped_to_one_recipient_leaves_the_others_answered(sink: SendGridSink) -> None:
    other = Mail(from_email="alerts@example.org", to_emails="other@example.org", subject="S", plain_text_content="B")
    sink.fail(SinkFailure.SERVER_ERROR, times=2, recipient="other@example.org")
    assert client(sink).send(mail()).status_code == 202  # not that recipient: answered, the count untouched
    for _ in range(2):
        with pytest.raises(InternalServerError):
            client(sink).send(other)
    assert client(sink).send(other).status_code == 202  # its two failures are used up
    assert sink.statuses == [202, 500, 500, 202]
    assert [email.to for email in sink.sent()] == [("someone@example.org",), ("other@example.org",)]


def test_a_hung_request_is_never_answered(sink: SendGridSink) -> None:
    sink.fail(SinkFailure.HANG, times=1)
    with pytest.raises(TimeoutError):
        client(sink).client.mail.send.post(request_body=mail().get(), timeout=0.2)
    assert sink.statuses == [None] and sink.sent() == []
    sink.recover()


@pytest.mark.parametrize(("method", "path", "status"), [("GET", "/v3/mail/send", 405), ("POST", "/v3/other", 404)])
def test_other_paths_and_methods(sink: SendGridSink, method: str, path: str, status: int) -> None:
    request = urllib.request.Request(f"{sink.base_url}{path}", data=b"{}" if method == "POST" else None, method=method)
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=2)
    assert raised.value.code == status
