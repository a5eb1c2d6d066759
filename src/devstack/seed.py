"""What the local stack starts with: tracked tickers, the secrets of the local fakes, one alert rule.

- tickers and the `news_api` secret: through `devstack.fakes.news_sources.seed_ingestion` (the fake
  sources' keys);
- the `sendgrid` secret: `{"api_key": ...}`, the key the local SendGrid sink accepts;
- the `canary_probe` secret: `{"token": ...}`, the canary's credential for its SSE probe stream;
- one alert rule that fires on the shipped news: NVDA above 0.5 (the fixtures carry NVDA headlines
  VADER scores 0.70 and 0.94), created as the dashboard creates rules (`lib.alerts.AlertTable`);
  its stream token is returned once, for the per-alert SSE stream (the table keeps its SHA-256).

Example (not run: writes the stack's secrets and an alert rule):
    >>> seeded = seed_stack(resources, news_server, sendgrid_api_key="local-sendgrid-key")  # doctest: +SKIP
    >>> seeded.alert.ticker                                                                 # doctest: +SKIP
    'NVDA'
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from dataclasses import dataclass

import boto3

from devstack.aws.resources import Resources
from devstack.fakes.news_sources import DEFAULT_TICKERS, FakeNewsServer, seed_ingestion
from devstack.fakes.sendgrid_sink import DEFAULT_API_KEY as DEFAULT_SENDGRID_API_KEY
from lib.alerts import AlertTable, Direction


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


DEMO_ALERT = ("NVDA", "above", 0.5, "analyst@example.com")  # ticker, direction, threshold, email


def seed_stack(resources: Resources, news_server: FakeNewsServer,
               sendgrid_api_key: str = DEFAULT_SENDGRID_API_KEY) -> Seeded:
    """Seed tickers, secrets and the demo alert rule on the moto of this process's boto3 defaults."""
    seed_ingestion(news_server, resources.secrets["news_api"], resources.tables["config"])
    boto3.client("secretsmanager").put_secret_value(
        SecretId=resources.secrets["sendgrid"], SecretString=json.dumps({"api_key": sendgrid_api_key}))
    # The canary's credential for its short SSE probe stream (lambdas/canary/probes.py).
    boto3.client("secretsmanager").put_secret_value(
        SecretId=resources.secrets["canary_probe"], SecretString=json.dumps({"token": secrets.token_hex(16)}))
    ticker, direction, threshold, email = DEMO_ALERT
    rule, token = AlertTable(resources.tables["config"]).create(ticker, Direction(direction), threshold, email,
                                                                 dt.datetime.now(dt.UTC))
    alert = SeededAlert(rule.alert_id, rule.ticker, str(rule.direction), rule.threshold, rule.email, token)
    return Seeded(tickers=tuple(t for t, _ in DEFAULT_TICKERS), alert=alert, sendgrid_api_key=sendgrid_api_key)
