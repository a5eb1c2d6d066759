"""The news source clients against the local fake Tiingo/Finnhub server (loopback HTTP, real shapes)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from devstack.fakes.news_sources import DEFAULT_API_KEYS, FailureMode, FakeNewsServer, NewsStore
from lib.news.sources import FinnhubSource, MalformedSourcePayloadError, SourceHTTPError, TiingoSource

TICKERS = ["AAPL", "MSFT", "TSLA", "NVDA"]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeNewsServer]:
    with FakeNewsServer() as fake:
        yield fake


def _window() -> tuple[dt.date, dt.date]:
    now = dt.datetime.now(dt.UTC)
    return (now - dt.timedelta(days=1)).date(), now.date()


def _sources(server: FakeNewsServer, keys: dict[str, str] = DEFAULT_API_KEYS) -> tuple[TiingoSource, FinnhubSource]:
    env = server.environment()
    return TiingoSource(env["TIINGO_BASE_URL"], keys["tiingo"]), FinnhubSource(env["FINNHUB_BASE_URL"], keys["finnhub"])


def test_both_sources_return_validated_utc_articles_of_tracked_tickers(server: FakeNewsServer) -> None:
    tiingo, finnhub = _sources(server)
    from_tiingo = tiingo.fetch(TICKERS, *_window())
    from_finnhub = finnhub.fetch(TICKERS, *_window())
    assert len(from_tiingo) == 6 and len(from_finnhub) == 6  # tiingo's 7th is tagged with an untracked ticker
    for article in [*from_tiingo, *from_finnhub]:
        assert article.ticker in TICKERS and article.headline and article.url.startswith("https://")
        assert article.published_at.tzinfo == dt.UTC
    partnership = next(a for a in from_tiingo if "partnership" in a.headline)
    assert partnership.ticker == "MSFT"  # tagged msft and nvda: the first tracked ticker gets it


def test_the_fixture_stories_are_recent_and_on_one_utc_day() -> None:
    just_after_midnight = dt.datetime(2026, 3, 2, 0, 20, tzinfo=dt.UTC)
    for now in (dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.UTC), just_after_midnight):
        store = NewsStore(now)
        moments = [m for articles in store.articles.values() for m, _ in articles]
        assert len({m.date() for m in moments}) == 1
        assert max(moments) <= now - dt.timedelta(minutes=5)
        assert now - min(moments) < dt.timedelta(days=1)


@pytest.mark.req("FR-018")
def test_wrong_keys_and_http_failures_are_source_http_errors(server: FakeNewsServer) -> None:
    tiingo, finnhub = _sources(server, {"tiingo": "wrong", "finnhub": "wrong"})
    for source in (tiingo, finnhub):
        with pytest.raises(SourceHTTPError, match="HTTP 401"):
            source.fetch(["AAPL"], *_window())
    tiingo, _ = _sources(server)
    server.fail("tiingo", FailureMode.SERVER_ERROR, times=1)
    with pytest.raises(SourceHTTPError, match="HTTP 503"):
        tiingo.fetch(["AAPL"], *_window())
    assert tiingo.fetch(["AAPL"], *_window())  # times=1: recovered by itself
    unreachable = TiingoSource("http://127.0.0.1:9", "key")
    with pytest.raises(SourceHTTPError, match="request failed"):
        unreachable.fetch(["AAPL"], *_window())


@pytest.mark.req("FR-018")
@pytest.mark.parametrize("mode", [FailureMode.MALFORMED, FailureMode.NOT_JSON])
def test_a_malformed_response_is_refused_whole(server: FakeNewsServer, mode: FailureMode) -> None:
    _, finnhub = _sources(server)
    server.fail("finnhub", mode, times=1)
    with pytest.raises(MalformedSourcePayloadError):
        finnhub.fetch(["AAPL"], *_window())


GOOD_TIINGO = {"title": "A", "url": "https://a.example.com", "publishedDate": "2026-01-15T10:00:00Z",
               "tickers": ["aapl"], "description": "d"}
GOOD_FINNHUB = {"headline": "B", "url": "https://b.example.com", "datetime": 1768471200, "summary": "s"}


@pytest.mark.req("FR-018")
@pytest.mark.parametrize("payload", [
    {"articles": []}, [GOOD_TIINGO, "not an object"], [{**GOOD_TIINGO, "title": ""}],
    [{**GOOD_TIINGO, "publishedDate": "2026-01-15T10:00:00"}], [{**GOOD_TIINGO, "tickers": "aapl"}],
    [{**GOOD_TIINGO, "description": 3}],
])
def test_tiingo_payload_shapes_that_are_refused(payload: Any) -> None:
    with pytest.raises(MalformedSourcePayloadError):
        TiingoSource.parse(payload, ["AAPL"])


@pytest.mark.req("FR-018")
@pytest.mark.parametrize("payload", [
    None, [{**GOOD_FINNHUB, "datetime": "1768471200"}], [{**GOOD_FINNHUB, "datetime": True}],
    [{**GOOD_FINNHUB, "datetime": -5}], [{k: v for k, v in GOOD_FINNHUB.items() if k != "headline"}],
])
def test_finnhub_payload_shapes_that_are_refused(payload: Any) -> None:
    with pytest.raises(MalformedSourcePayloadError):
        FinnhubSource.parse(payload, "AAPL")


def test_published_headlines_are_served_from_then_on_and_filtered_by_date(server: FakeNewsServer) -> None:
    tiingo, finnhub = _sources(server)
    server.publish("finnhub", "TSLA", "Tesla opens a new factory", "Production starts next year.")
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    server.publish("tiingo", "TSLA", "An old Tesla story", published=old)
    assert any(a.headline == "Tesla opens a new factory" for a in finnhub.fetch(["TSLA"], *_window()))
    assert not any(a.headline == "An old Tesla story" for a in tiingo.fetch(["TSLA"], *_window()))
    assert any(a.headline == "An old Tesla story" for a in tiingo.fetch(["TSLA"], old.date(), old.date()))


def test_the_server_answers_unknown_paths_and_bad_queries_with_4xx(server: FakeNewsServer) -> None:
    assert requests.get(f"{server.base_url}/nothing", timeout=5).status_code == 404
    response = requests.get(f"{server.base_url}/api/v1/company-news", params={"symbol": "AAPL"},
                            headers={"X-Finnhub-Token": DEFAULT_API_KEYS["finnhub"]}, timeout=5)
    assert response.status_code == 400


def test_the_feed_publishes_upcoming_stories_over_time_until_stopped() -> None:
    with FakeNewsServer() as fake:
        initial = {source: len(articles) for source, articles in fake.store.articles.items()}
        fake.start_feed(interval_s=0.01)
        deadline = time.monotonic() + 10
        while sum(len(a) for a in fake.store.articles.values()) < sum(initial.values()) + 8:
            assert time.monotonic() < deadline, "the feed published nothing"
            time.sleep(0.01)
    published = [article for source, articles in fake.store.articles.items()
                 for _, article in articles[initial[source]:]]
    assert len(published) >= 8
    headlines = [a.get("title") or a.get("headline") for a in published]
    assert len(set(headlines)) == len(headlines)  # a second round gets "(update n)": no accidental duplicates
    stopped = sum(len(a) for a in fake.store.articles.values())
    time.sleep(0.05)
    assert sum(len(a) for a in fake.store.articles.values()) == stopped
