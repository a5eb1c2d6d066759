"""What the local stack starts with: tracked tickers, the secrets of the local fakes, a Cognito user
pool with one demo user, one alert rule of that user.

- tickers and the `news_api` secret: through `devstack.fakes.news_sources.seed_ingestion` (the fake
  sources' keys);
- the `sendgrid` secret: `{"api_key": ...}`, the key the local SendGrid sink accepts;
- the `canary_probe` secret: `{"token": ...}`, the canary's credential for its SSE probe stream;
- a user pool (sign-in by email, the address verified) and an app client allowing
  USER_PASSWORD_AUTH, reading `email` and `email_verified` into the ID token (as Terraform's
  modules/auth configures the pool in AWS), and the demo user (`DEMO_USER`), confirmed, with a
  permanent password: the dashboard page signs in with it;
- one alert rule of the demo user that fires on the shipped news: NVDA above 0.5 (the fixtures carry NVDA headlines
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
from devstack.stack import physical_name
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
class SeededAuth:
    user_pool_id: str
    client_id: str
    username: str  # the demo user's email (the pool signs in by email)
    password: str
    sub: str


@dataclass(frozen=True)
class Seeded:
    tickers: tuple[str, ...]
    alert: SeededAlert
    sendgrid_api_key: str
    auth: SeededAuth


DEMO_ALERT = ("NVDA", "above", 0.5)  # ticker, direction, threshold (mailed to the demo user's address)
# Local only: moto's pool, printed on `make up`'s console for signing in on the page.
DEMO_USER = ("analyst@example.com", "Local-demo-pass-1")


def create_user_pool(name: str, users: dict[str, str]) -> SeededAuth:
    """A pool and web client as modules/auth makes them, with `users` (email -> password) confirmed;
    the returned auth names the first user."""
    cognito = boto3.client("cognito-idp")
    pool = cognito.create_user_pool(PoolName=name, UsernameAttributes=["email"],
                                    AutoVerifiedAttributes=["email"])["UserPool"]
    client = cognito.create_user_pool_client(
        UserPoolId=pool["Id"], ClientName=f"{name}-web", GenerateSecret=False,
        ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
        ReadAttributes=["email", "email_verified"])["UserPoolClient"]
    subs = {email: add_user(pool["Id"], email, password) for email, password in users.items()}
    username, password = next(iter(users.items()))
    return SeededAuth(pool["Id"], client["ClientId"], username, password, subs[username])


def add_user(user_pool_id: str, email: str, password: str, verified: bool = True) -> str:
    """A confirmed user with a permanent password; returns its `sub`."""
    cognito = boto3.client("cognito-idp")
    user = cognito.admin_create_user(
        UserPoolId=user_pool_id, Username=email, MessageAction="SUPPRESS",
        UserAttributes=[{"Name": "email", "Value": email},
                        {"Name": "email_verified", "Value": "true" if verified else "false"}])["User"]
    cognito.admin_set_user_password(UserPoolId=user_pool_id, Username=email, Password=password, Permanent=True)
    return next(a["Value"] for a in user["Attributes"] if a["Name"] == "sub")


def seed_stack(resources: Resources, news_server: FakeNewsServer,
               sendgrid_api_key: str = DEFAULT_SENDGRID_API_KEY) -> Seeded:
    """Seed tickers, secrets and the demo alert rule on the moto of this process's boto3 defaults."""
    seed_ingestion(news_server, resources.secrets["news_api"], resources.tables["config"])
    boto3.client("secretsmanager").put_secret_value(
        SecretId=resources.secrets["sendgrid"], SecretString=json.dumps({"api_key": sendgrid_api_key}))
    # The canary's credential for its short SSE probe stream (lambdas/canary/probes.py).
    boto3.client("secretsmanager").put_secret_value(
        SecretId=resources.secrets["canary_probe"], SecretString=json.dumps({"token": secrets.token_hex(16)}))
    auth = create_user_pool(physical_name("users"), dict([DEMO_USER]))
    ticker, direction, threshold = DEMO_ALERT
    rule, token = AlertTable(resources.tables["config"]).create(auth.sub, ticker, Direction(direction), threshold,
                                                                 auth.username, dt.datetime.now(dt.UTC))
    alert = SeededAlert(rule.alert_id, rule.ticker, str(rule.direction), rule.threshold, rule.email, token)
    return Seeded(tickers=tuple(t for t, _ in DEFAULT_TICKERS), alert=alert, sendgrid_api_key=sendgrid_api_key,
                  auth=auth)
