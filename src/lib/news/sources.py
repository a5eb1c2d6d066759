"""HTTP clients for the two news sources: Tiingo (`/tiingo/news`) and Finnhub (`/company-news`).

Calls go through `requests`, which the ingestion Lambda's Tracer patches, so each one is an
HTTP subsegment. API keys travel in headers, never in the URL: the URL is recorded in the trace.
A payload that does not have the documented shape raises `MalformedSourcePayloadError` for the
whole response (nothing of a malformed response is kept); an HTTP failure raises
`SourceHTTPError`.

Example:
    >>> source = TiingoSource(news_server.base_url, api_key=news_server.api_keys["tiingo"])  # the devstack's fake
    >>> today = dt.datetime.now(dt.UTC).date()
    >>> articles = source.fetch(["AAPL"], since=today - dt.timedelta(days=2), until=today)
    >>> {article.ticker for article in articles}
    {'AAPL'}
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import requests

from lib.news.model import Article, InvalidTimestampError, parse_iso

# (connect, read) seconds: a slow source must not eat the run (ingestion times out at 120 s).
REQUEST_TIMEOUT_S = (3.05, 10.0)
MAX_SUMMARY_CHARS = 2000


class SourceError(Exception):
    """A news source could not deliver this run; the run goes on with the other sources."""

    def __init__(self, source: str, message: str):
        super().__init__(f"{source}: {message}")
        self.source = source


class SourceHTTPError(SourceError):
    """The source answered with an HTTP error, or could not be reached."""


class MalformedSourcePayloadError(SourceError):
    """The source answered 200 with a body that is not the documented shape."""


class NewsSource(Protocol):
    name: str

    def fetch(self, tickers: Sequence[str], since: dt.date, until: dt.date) -> list[Article]:
        """Every article about `tickers` published between the two UTC dates (inclusive)."""
        ...


def _get_json(session: requests.Session, source: str, url: str, params: Mapping[str, str]) -> Any:
    try:
        response = session.get(url, params=params, timeout=REQUEST_TIMEOUT_S)
    except requests.RequestException as error:
        raise SourceHTTPError(source, f"request failed: {type(error).__name__}") from error
    if response.status_code != 200:
        raise SourceHTTPError(source, f"HTTP {response.status_code}")
    try:
        return response.json()
    except ValueError as error:
        raise MalformedSourcePayloadError(source, "body is not JSON") from error


def _field(source: str, index: int, record: Any, name: str, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(record, dict):
        raise MalformedSourcePayloadError(source, f"article {index} is not an object")
    value = record.get(name)
    # bool is an int in Python; a boolean where a number belongs is still the wrong shape.
    if not isinstance(value, kind) or isinstance(value, bool):
        raise MalformedSourcePayloadError(source, f"article {index}: field {name!r} missing or not {kind}")
    if isinstance(value, str) and not value.strip():
        raise MalformedSourcePayloadError(source, f"article {index}: field {name!r} is empty")
    return value


def _list_payload(source: str, payload: Any) -> list[Any]:
    if not isinstance(payload, list):
        raise MalformedSourcePayloadError(source, f"expected a JSON array, got {type(payload).__name__}")
    return payload


class TiingoSource:
    """Tiingo News API: one call for all tickers; `Authorization: Token <key>`."""

    name = "tiingo"

    def __init__(self, base_url: str, api_key: str, session: requests.Session | None = None):
        self._url = base_url.rstrip("/") + "/tiingo/news"
        self._session = session or requests.Session()
        self._session.headers["Authorization"] = f"Token {api_key}"

    def fetch(self, tickers: Sequence[str], since: dt.date, until: dt.date) -> list[Article]:
        if not tickers:
            return []
        params = {"tickers": ",".join(t.lower() for t in tickers), "startDate": since.isoformat(),
                  "endDate": until.isoformat()}
        return self.parse(_get_json(self._session, self.name, self._url, params), tickers)

    @classmethod
    def parse(cls, payload: Any, tickers: Sequence[str]) -> list[Article]:
        """Articles of a Tiingo response; each goes to the first tracked ticker it is tagged with."""
        tracked = [t.upper() for t in tickers]
        articles = []
        for index, record in enumerate(_list_payload(cls.name, payload)):
            headline = _field(cls.name, index, record, "title", str)
            url = _field(cls.name, index, record, "url", str)
            tags = _field(cls.name, index, record, "tickers", list)
            description = record.get("description") or ""
            if not isinstance(description, str):
                raise MalformedSourcePayloadError(cls.name, f"article {index}: 'description' is not a string")
            try:
                published = parse_iso(_field(cls.name, index, record, "publishedDate", str))
            except InvalidTimestampError as error:
                raise MalformedSourcePayloadError(cls.name, f"article {index}: {error}") from error
            mentioned = {str(tag).upper() for tag in tags}
            ticker = next((t for t in tracked if t in mentioned), None)
            if ticker is None:  # tagged only with tickers nobody tracks
                continue
            articles.append(Article(cls.name, ticker, headline.strip(), description.strip()[:MAX_SUMMARY_CHARS],
                                    url, published))
        return articles


class FinnhubSource:
    """Finnhub company news: one call per ticker; `X-Finnhub-Token: <key>`."""

    name = "finnhub"

    def __init__(self, base_url: str, api_key: str, session: requests.Session | None = None):
        self._url = base_url.rstrip("/") + "/company-news"
        self._session = session or requests.Session()
        self._session.headers["X-Finnhub-Token"] = api_key

    def fetch(self, tickers: Sequence[str], since: dt.date, until: dt.date) -> list[Article]:
        # Parse every response before returning any: one bad page fails the whole source.
        articles: list[Article] = []
        for ticker in tickers:
            params = {"symbol": ticker.upper(), "from": since.isoformat(), "to": until.isoformat()}
            articles.extend(self.parse(_get_json(self._session, self.name, self._url, params), ticker))
        return articles

    @classmethod
    def parse(cls, payload: Any, ticker: str) -> list[Article]:
        articles = []
        for index, record in enumerate(_list_payload(cls.name, payload)):
            headline = _field(cls.name, index, record, "headline", str)
            url = _field(cls.name, index, record, "url", str)
            epoch = _field(cls.name, index, record, "datetime", int)
            summary = record.get("summary") or ""
            if not isinstance(summary, str):
                raise MalformedSourcePayloadError(cls.name, f"article {index}: 'summary' is not a string")
            if epoch <= 0:
                raise MalformedSourcePayloadError(cls.name, f"article {index}: 'datetime' is not an epoch")
            published = dt.datetime.fromtimestamp(epoch, dt.UTC)
            articles.append(Article(cls.name, ticker.upper(), headline.strip(), summary.strip()[:MAX_SUMMARY_CHARS],
                                    url, published))
        return articles
