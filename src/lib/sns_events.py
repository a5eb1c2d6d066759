"""The messages of an SNS → Lambda event, each validated as the topic's pydantic model
(Powertools parser, SnsEnvelope: every record's `Sns.Message` is JSON of one message).

Example:
    >>> from pydantic import BaseModel
    >>> class Ping(BaseModel):
    ...     n: int
    >>> event = {"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0",
    ...     "EventSubscriptionArn": "arn:aws:sns:eu-west-1:123456789012:t:0", "Sns": {
    ...     "Type": "Notification", "MessageId": "0", "TopicArn": "arn:aws:sns:eu-west-1:123456789012:t",
    ...     "Subject": None, "Message": '{"n": 1}', "Timestamp": "2026-01-01T00:00:00.000Z",
    ...     "SignatureVersion": "1", "Signature": "x", "SigningCertUrl": "https://sns.example/c.pem",
    ...     "UnsubscribeUrl": "https://sns.example/u", "MessageAttributes": {}}}]}
    >>> sns_messages(event, Ping, "ping")
    [Ping(n=1)]
"""

from __future__ import annotations

from typing import Any, TypeVar

from aws_lambda_powertools.utilities.parser import envelopes, parse
from pydantic import BaseModel

Message = TypeVar("Message", bound=BaseModel)


class MalformedSnsEventError(ValueError):
    """An SNS delivery without a message of the topic's model."""


def sns_messages(event: Any, model: type[Message], what: str) -> list[Message]:
    """The `model` messages of an SNS → Lambda event; pydantic's ValidationError names what is wrong,
    MalformedSnsEventError says the event carries no `what` message at all."""
    messages = parse(event=event, model=model, envelope=envelopes.SnsEnvelope)
    if not messages or not all(isinstance(message, model) for message in messages):
        raise MalformedSnsEventError(f"SNS event carries no {what} message")
    return [message for message in messages if isinstance(message, model)]
