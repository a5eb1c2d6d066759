"""What the local stack starts with: tracked tickers, the secrets of the local fakes, one alert rule.

- tickers and the `news_api` secret: through `devstack.news_sources.seed_ingestion` (the fake
  sources' keys);
- the `sendgrid` secret: `{"api_key": ...}`, the key the local SendGrid sink accepts;
- one alert rule that fires on the shipped news: NVDA above 0.5 (the fixtures carry NVDA headlines
  VADER scores 0.70 and 0.94), stored as the data model says (`config`, `pk="alert"`), with the
  SHA-256 of its stream token (the token itself is returned once, for the per-alert SSE stream).

Example:
    >>> seeded = seed_stack(resources, news_server, sendgrid_api_key="local-sendgrid-key")  # doctest: +SKIP
    >>> seeded.alert.ticker
    'NVDA'
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from decimal import Decimal

import boto3

from devstack.aws import Resources
from devstack.news_sources import DEFAULT_TICKERS, FakeNewsServer, seed_ingestion

DEFAULT_SENDGRID_API_KEY = "SG.local-devstack-key"


@dataclass(frozen=True)
class SeededAlert:
    alert_id: str
    ticker: str
    direction: str
    threshold: float
    email: str
    stream_token: str  # shown once; only its SHA-256 is stored


@dataclass(frozen=True)
class Seeded:
    tickers: tuple[str, ...]
    alert: SeededAlert
    sendgrid_api_key: str


DEMO_ALERT = SeededAlert(
    alert_id="demo-nvda-above-0-5", ticker="NVDA", direction="above", threshold=0.5,
    email="analyst@example.com", stream_token="",
)


def seed_stack(resources: Resources, news_server: FakeNewsServer,
               sendgrid_api_key: str = DEFAULT_SENDGRID_API_KEY) -> Seeded:
    """Seed tickers, secrets and the demo alert rule on the moto of this process's boto3 defaults."""
    seed_ingestion(news_server, resources.secrets["news_api"], resources.tables["config"])
    boto3.client("secretsmanager").put_secret_value(
        SecretId=resources.secrets["sendgrid"], SecretString=json.dumps({"api_key": sendgrid_api_key}))
    token = secrets.token_urlsafe(24)
    alert = SeededAlert(**{**DEMO_ALERT.__dict__, "stream_token": token})
    boto3.resource("dynamodb").Table(resources.tables["config"]).put_item(Item={
        "pk": "alert", "sk": alert.alert_id, "alert_id": alert.alert_id, "ticker": alert.ticker,
        "direction": alert.direction, "threshold": Decimal(str(alert.threshold)), "email": alert.email,
        "stream_token_sha256": hashlib.sha256(token.encode()).hexdigest(),
    })
    return Seeded(tickers=tuple(ticker for ticker, _ in DEFAULT_TICKERS), alert=alert,
                  sendgrid_api_key=sendgrid_api_key)
