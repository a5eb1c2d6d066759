"""A local stand-in for the two news APIs: Tiingo- and Finnhub-shaped JSON over HTTP on loopback.

It serves the shipped fixtures (`fixtures/news/*.json`, real response shapes), rebased so the
newest story is a few minutes old and all of them fall on one UTC day; it can publish new
headlines (one at a time, or a feed over time from `upcoming.json`) and fail on demand. Routes
and auth follow the real APIs, so the ingestion Lambda runs unchanged against it:

- `GET /tiingo/news?tickers=aapl,msft&startDate=YYYY-MM-DD&endDate=YYYY-MM-DD`, `Authorization: Token <key>`
- `GET /api/v1/company-news?symbol=AAPL&from=YYYY-MM-DD&to=YYYY-MM-DD`, `X-Finnhub-Token: <key>`

Example (not run: needs the ingestion function's secret and tables on moto):
    >>> with FakeNewsServer() as server:                                  # doctest: +SKIP
    ...     server.fail("tiingo", FailureMode.SERVER_ERROR)
    ...     env = server.environment()     # TIINGO_BASE_URL, FINNHUB_BASE_URL
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from enum import Enum
from http.server import BaseHTTPRequestHandler
from itertools import count
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3

from devstack.fakes.failures import ScriptedFailures
from devstack.loopback import LoopbackServer, LoopbackService, send_reply
from lib.news.store import ConfigTable

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "news"
DEFAULT_API_KEYS = {"tiingo": "local-tiingo-key", "finnhub": "local-finnhub-key"}
DEFAULT_TICKERS = (("AAPL", "Apple Inc."), ("MSFT", "Microsoft Corporation"), ("TSLA", "Tesla, Inc."),
                   ("NVDA", "NVIDIA Corporation"))
NEWEST_AGE = dt.timedelta(minutes=5)


class FailureMode(Enum):
    """How a source misbehaves when told to fail."""

    SERVER_ERROR = "server_error"    # 503 with a JSON error body
    RATE_LIMITED = "rate_limited"    # 429
    MALFORMED = "malformed"          # 200, the documented array, one record of it without headline/title
    WRONG_SHAPE = "wrong_shape"      # 200, JSON, but an object where the documented shape is an array
    NOT_JSON = "not_json"            # 200 with an HTML error page


def _tiingo_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class NewsStore:
    """The articles each source serves, in its own shape, with timestamps as UTC datetimes."""

    def __init__(self, now: dt.datetime | None = None, fixtures: Path = FIXTURES):
        tiingo = json.loads((fixtures / "tiingo.json").read_text())
        finnhub = json.loads((fixtures / "finnhub.json").read_text())
        self.upcoming: list[dict[str, str]] = json.loads((fixtures / "upcoming.json").read_text())
        moments = [dt.datetime.fromisoformat(a["publishedDate"].replace("Z", "+00:00")) for a in tiingo]
        moments += [dt.datetime.fromtimestamp(a["datetime"], dt.UTC) for a in finnhub]
        shift = self._shift(min(moments), max(moments), now or dt.datetime.now(dt.UTC))
        self._lock = threading.Lock()
        self._ids = count(90_000_000)
        self.articles: dict[str, list[tuple[dt.datetime, dict[str, Any]]]] = {"tiingo": [], "finnhub": []}
        for article in tiingo:
            moment = dt.datetime.fromisoformat(article["publishedDate"].replace("Z", "+00:00")) + shift
            self.articles["tiingo"].append((moment, {**article, "publishedDate": _tiingo_time(moment)}))
        for article in finnhub:
            moment = dt.datetime.fromtimestamp(article["datetime"], dt.UTC) + shift
            self.articles["finnhub"].append((moment, {**article, "datetime": int(moment.timestamp())}))

    @staticmethod
    def _shift(oldest: dt.datetime, newest: dt.datetime, now: dt.datetime) -> dt.timedelta:
        """Newest story a few minutes old; all stories on one UTC day (dedup keys include the date)."""
        target = now - NEWEST_AGE
        if (target - (newest - oldest)).date() != target.date():
            target = dt.datetime.combine(target.date(), dt.time(), dt.UTC) - NEWEST_AGE
        return target - newest

    def add(self, source: str, ticker: str, headline: str, summary: str, published: dt.datetime) -> dict[str, Any]:
        """A new story, as the source will serve it from now on."""
        slug = "-".join(headline.lower().split())[:60]
        if source == "tiingo":
            article: dict[str, Any] = {
                "id": next(self._ids), "title": headline, "url": f"https://live.example.com/{slug}",
                "description": summary, "publishedDate": _tiingo_time(published),
                "crawlDate": _tiingo_time(published), "source": "live.example.com", "tickers": [ticker.lower()],
                "tags": [],
            }
        elif source == "finnhub":
            article = {
                "category": "company", "datetime": int(published.timestamp()), "headline": headline,
                "id": next(self._ids), "image": "", "related": ticker.upper(), "source": "Example Live",
                "summary": summary, "url": f"https://live.example.org/{slug}",
            }
        else:
            raise ValueError(f"unknown source {source!r}")
        with self._lock:
            self.articles[source].append((published, article))
        return article

    def tiingo(self, tickers: set[str], since: dt.date, until: dt.date) -> list[dict[str, Any]]:
        with self._lock:
            found = [(m, a) for m, a in self.articles["tiingo"]
                     if since <= m.date() <= until and tickers & {t.lower() for t in a["tickers"]}]
        return [article for _, article in sorted(found, key=lambda pair: pair[0], reverse=True)]

    def finnhub(self, symbol: str, since: dt.date, until: dt.date) -> list[dict[str, Any]]:
        with self._lock:
            found = [(m, a) for m, a in self.articles["finnhub"]
                     if since <= m.date() <= until and a["related"].upper() == symbol.upper()]
        return [article for _, article in sorted(found, key=lambda pair: pair[0], reverse=True)]


class FakeNewsServer(LoopbackService):
    """Both news APIs on one loopback port (port 0 by default: a free one)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, api_keys: Mapping[str, str] | None = None,
                 now: dt.datetime | None = None):
        self.api_keys = dict(api_keys or DEFAULT_API_KEYS)
        self.store = NewsStore(now)
        self.requests: Counter[str] = Counter()
        self._failures: ScriptedFailures[str, FailureMode] = ScriptedFailures()
        self._lock = threading.Lock()
        self._server = LoopbackServer.http(host, port, self._handler_class(), name="fake-news")
        self._feed_stop = threading.Event()
        self._feed: threading.Thread | None = None

    # lifecycle (start, the context manager, base_url: LoopbackService) -----------------------
    def stop(self) -> None:
        self._feed_stop.set()
        if self._feed is not None:
            self._feed.join(timeout=5)
        super().stop()

    def environment(self) -> dict[str, str]:
        """The ingestion function's env values that point it at this server."""
        return {"TIINGO_BASE_URL": self.base_url, "FINNHUB_BASE_URL": f"{self.base_url}/api/v1"}

    def secret_string(self) -> str:
        """The `news_api` secret's value (stack.json: JSON {"tiingo": key, "finnhub": key})."""
        return json.dumps(self.api_keys)

    # behaviour on demand ----------------------------------------------------------------------
    def fail(self, source: str, mode: FailureMode, times: int | None = None) -> None:
        """Make `source` fail its next `times` requests (None: until `recover`)."""
        self._failures.fail(source, mode, times)

    def recover(self, source: str) -> None:
        self._failures.recover(source)

    def publish(self, source: str, ticker: str, headline: str, summary: str = "",
                published: dt.datetime | None = None) -> dict[str, Any]:
        """A new headline, served from now on."""
        return self.store.add(source, ticker, headline, summary, published or dt.datetime.now(dt.UTC))

    def start_feed(self, interval_s: float) -> None:
        """Publish the next story of `upcoming.json` every `interval_s` seconds until `stop()` (the demo)."""
        upcoming = list(self.store.upcoming)

        def run() -> None:
            for index in count():
                if self._feed_stop.wait(interval_s):
                    return
                story = upcoming[index % len(upcoming)]
                edition = index // len(upcoming)
                headline = story["headline"] if edition == 0 else f"{story['headline']} (update {edition})"
                self.publish(story["source"], story["ticker"], headline, story["summary"])

        self._feed = threading.Thread(target=run, name="fake-news-feed", daemon=True)
        self._feed.start()

    # HTTP ---------------------------------------------------------------------------------------
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # one line per request drowns the console
                pass

            def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
                raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                send_reply(self, status, raw, content_type)

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = {key: values[0] for key, values in parse_qs(url.query).items()}
                if url.path == "/tiingo/news":
                    token = f"Token {server.api_keys['tiingo']}"
                    self._serve("tiingo", query, self.headers.get("Authorization") == token)
                elif url.path == "/api/v1/company-news":
                    self._serve("finnhub", query, self.headers.get("X-Finnhub-Token") == server.api_keys["finnhub"])
                else:
                    self._send(404, {"error": "not found"})

            def _serve(self, source: str, query: Mapping[str, str], authorised: bool) -> None:
                with server._lock:
                    server.requests[source] += 1
                if not authorised:
                    self._send(401, {"error": "invalid API key"})
                    return
                failure = server._failures.take(source)
                if failure is FailureMode.SERVER_ERROR:
                    self._send(503, {"error": "service unavailable"})
                elif failure is FailureMode.RATE_LIMITED:
                    self._send(429, {"error": "rate limit exceeded"})
                elif failure is FailureMode.NOT_JSON:
                    self._send(200, "<html><body>maintenance</body></html>", "text/html")
                else:
                    try:
                        body = self._articles(source, query)
                    except (KeyError, ValueError) as error:
                        self._send(400, {"error": f"bad query: {error}"})
                        return
                    if failure is FailureMode.MALFORMED:  # among the good ones, not only after them
                        middle = len(body) // 2
                        body = [*body[:middle], {"url": "https://broken.example.com/", "id": 1}, *body[middle:]]
                    if failure is FailureMode.WRONG_SHAPE:
                        self._send(200, {"data": body})
                        return
                    self._send(200, body)

            def _articles(self, source: str, query: Mapping[str, str]) -> list[dict[str, Any]]:
                if source == "tiingo":
                    tickers = {t.strip().lower() for t in query["tickers"].split(",") if t.strip()}
                    since = dt.date.fromisoformat(query["startDate"])
                    until = dt.date.fromisoformat(query.get("endDate", dt.date.max.isoformat()))
                    return server.store.tiingo(tickers, since, until)
                return server.store.finnhub(query["symbol"], dt.date.fromisoformat(query["from"]),
                                            dt.date.fromisoformat(query["to"]))

        return Handler


def seed_ingestion(server: FakeNewsServer, secret_name: str, config_table: str,
                   tickers: Iterable[tuple[str, str]] = DEFAULT_TICKERS) -> None:
    """Point the stack at the fake sources: the `news_api` secret gets their keys, the config table
    the tracked tickers (ingestion only reads them). Uses the process's boto3 defaults (moto)."""
    boto3.client("secretsmanager").put_secret_value(SecretId=secret_name, SecretString=server.secret_string())
    ConfigTable(config_table).track(tickers)
