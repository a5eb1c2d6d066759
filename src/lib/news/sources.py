"""HTTP clients for the two news sources: Tiingo (`/tiingo/news`) and Finnhub (`/company-news`).

Calls go through `requests`, which the ingestion Lambda's Tracer patches, so each one is an
HTTP subsegment. API keys travel in headers, never in the URL: the URL is recorded in the trace.

Two kinds of bad payload, two outcomes:
- a response that is not the documented shape at all (not JSON, not a JSON array) raises
  `MalformedSourcePayloadError`: the source failed this run (nothing of it is kept);
- a record of a well-formed array that cannot be read (a field missing, of the wrong type, empty,
  a timestamp without offset) is skipped: the other records of the response are kept, and the
  skip is returned as a `SkippedRecord` (its index and a reason naming the field, never its value),
  for the caller to count and trace. One bad record no longer silences a source for a day.
An HTTP failure raises `SourceHTTPError`.

Example:
    >>> source = TiingoSource(news_server.base_url, api_key=news_server.api_keys["tiingo"])  # the devstack's fake
    >>> today = dt.datetime.now(dt.UTC).date()
    >>> fetched = source.fetch(["AAPL"], since=today - dt.timedelta(days=2), until=today)
    >>> {article.ticker for article in fetched.articles}, fetched.skipped
    ({'AAPL'}, [])
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
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
    """The source answered 200 with a body that is not the documented shape (not JSON, not an array)."""


class MalformedRecordError(ValueError):
    """One record of a well-formed response cannot be read; the message names the field, not its value."""


@dataclass(frozen=True)
class SkippedRecord:
    """A record left out of a response: its index in that response, why (the field, never the value),
    and for per-ticker sources the ticker whose response held it."""

    index: int
    reason: str
    ticker: str | None = None


@dataclass
class Fetched:
    """What one source delivered this run: the readable articles and the records it skipped."""

    articles: list[Article] = field(default_factory=list)
    skipped: list[SkippedRecord] = field(default_factory=list)


class NewsSource(Protocol):
    name: str

    def fetch(self, tickers: Sequence[str], since: dt.date, until: dt.date) -> Fetched:
        """Every readable article about `tickers` published between the two UTC dates (inclusive)."""
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


_KIND_NAMES = {str: "a string", list: "an array", int: "an integer"}


def _field(record: Any, name: str, kind: type) -> Any:
    if not isinstance(record, dict):
        raise MalformedRecordError("not an object")
    value = record.get(name)
    # bool is an int in Python; a boolean where a number belongs is still the wrong shape.
    if not isinstance(value, kind) or isinstance(value, bool):
        raise MalformedRecordError(f"field {name!r} missing or not {_KIND_NAMES[kind]}")
    if isinstance(value, str) and not value.strip():
        raise MalformedRecordError(f"field {name!r} is empty")
    return value


def _optional_text(record: dict[str, Any], name: str) -> str:
    value = record.get(name) or ""
    if not isinstance(value, str):
        raise MalformedRecordError(f"field {name!r} is not a string")
    return value


def _list_payload(source: str, payload: Any) -> list[Any]:
    if not isinstance(payload, list):
        raise MalformedSourcePayloadError(source, f"expected a JSON array, got {type(payload).__name__}")
    return payload


def _read_records(source: str, payload: Any, read: Callable[[Any], Article | None],
                  ticker: str | None = None) -> Fetched:
    """Each record of the array through `read` (None: readable, but not for us); unreadable ones skipped."""
    fetched = Fetched()
    for index, record in enumerate(_list_payload(source, payload)):
        try:
            article = read(record)
        except MalformedRecordError as error:
            fetched.skipped.append(SkippedRecord(index, str(error), ticker))
            continue
        if article is not None:
            fetched.articles.append(article)
    return fetched


class TiingoSource:
    """Tiingo News API: one call for all tickers; `Authorization: Token <key>`."""

    name = "tiingo"

    def __init__(self, base_url: str, api_key: str, session: requests.Session | None = None):
        self._url = base_url.rstrip("/") + "/tiingo/news"
        self._session = session or requests.Session()
        self._session.headers["Authorization"] = f"Token {api_key}"

    def fetch(self, tickers: Sequence[str], since: dt.date, until: dt.date) -> Fetched:
        if not tickers:
            return Fetched()
        params = {"tickers": ",".join(t.lower() for t in tickers), "startDate": since.isoformat(),
                  "endDate": until.isoformat()}
        return self.parse(_get_json(self._session, self.name, self._url, params), tickers)

    @classmethod
    def parse(cls, payload: Any, tickers: Sequence[str]) -> Fetched:
        """Articles of a Tiingo response; each goes to the first tracked ticker it is tagged with."""
        tracked = [t.upper() for t in tickers]

        def read(record: Any) -> Article | None:
            headline = _field(record, "title", str)
            url = _field(record, "url", str)
            tags = _field(record, "tickers", list)
            description = _optional_text(record, "description")
            try:
                published = parse_iso(_field(record, "publishedDate", str))
            except InvalidTimestampError:
                raise MalformedRecordError("field 'publishedDate' is not an ISO-8601 instant with offset") from None
            mentioned = {str(tag).upper() for tag in tags}
            ticker = next((t for t in tracked if t in mentioned), None)
            if ticker is None:  # tagged only with tickers nobody tracks
                return None
            return Article(cls.name, ticker, headline.strip(), description.strip()[:MAX_SUMMARY_CHARS], url, published)

        return _read_records(cls.name, payload, read)


class FinnhubSource:
    """Finnhub company news: one call per ticker; `X-Finnhub-Token: <key>`."""

    name = "finnhub"

    def __init__(self, base_url: str, api_key: str, session: requests.Session | None = None):
        self._url = base_url.rstrip("/") + "/company-news"
        self._session = session or requests.Session()
        self._session.headers["X-Finnhub-Token"] = api_key

    def fetch(self, tickers: Sequence[str], since: dt.date, until: dt.date) -> Fetched:
        # Parse every response before returning any: one response of the wrong shape fails the whole source.
        fetched = Fetched()
        for ticker in tickers:
            params = {"symbol": ticker.upper(), "from": since.isoformat(), "to": until.isoformat()}
            page = self.parse(_get_json(self._session, self.name, self._url, params), ticker)
            fetched.articles.extend(page.articles)
            fetched.skipped.extend(page.skipped)
        return fetched

    @classmethod
    def parse(cls, payload: Any, ticker: str) -> Fetched:
        def read(record: Any) -> Article:
            headline = _field(record, "headline", str)
            url = _field(record, "url", str)
            epoch = _field(record, "datetime", int)
            summary = _optional_text(record, "summary")
            try:
                if epoch <= 0:
                    raise ValueError("not positive")
                published = dt.datetime.fromtimestamp(epoch, dt.UTC)
            except (ValueError, OverflowError, OSError):
                raise MalformedRecordError("field 'datetime' is not an epoch in seconds") from None
            return Article(cls.name, ticker.upper(), headline.strip(), summary.strip()[:MAX_SUMMARY_CHARS], url,
                           published)

        return _read_records(cls.name, payload, read, ticker.upper())
