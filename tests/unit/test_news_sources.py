"""The news source clients against the local fake Tiingo/Finnhub server (loopback HTTP, real shapes)."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path
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
    from_tiingo = tiingo.fetch(TICKERS, *_window()).articles
    from_finnhub = finnhub.fetch(TICKERS, *_window()).articles
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
    assert tiingo.fetch(["AAPL"], *_window()).articles  # times=1: recovered by itself
    unreachable = TiingoSource("http://127.0.0.1:9", "key")
    with pytest.raises(SourceHTTPError, match="request failed"):
        unreachable.fetch(["AAPL"], *_window())


@pytest.mark.req("FR-018")
@pytest.mark.parametrize("source", ["tiingo", "finnhub"])
@pytest.mark.parametrize("mode", [FailureMode.WRONG_SHAPE, FailureMode.NOT_JSON])
def test_a_response_that_is_not_the_documented_shape_is_refused_whole(
        server: FakeNewsServer, mode: FailureMode, source: str) -> None:
    client = dict(zip(("tiingo", "finnhub"), _sources(server), strict=True))[source]
    server.fail(source, mode, times=1)
    with pytest.raises(MalformedSourcePayloadError):
        client.fetch(["AAPL"], *_window())


@pytest.mark.req("FR-018", "FR-005")
@pytest.mark.parametrize("source", ["tiingo", "finnhub"])
def test_one_bad_record_among_good_ones_is_skipped_and_the_others_kept(server: FakeNewsServer, source: str) -> None:
    client = dict(zip(("tiingo", "finnhub"), _sources(server), strict=True))[source]
    healthy = client.fetch(TICKERS, *_window())
    server.fail(source, FailureMode.MALFORMED, times=1)
    fetched = client.fetch(TICKERS, *_window())
    assert fetched.articles == healthy.articles and healthy.skipped == []
    [skipped] = fetched.skipped
    title = "title" if source == "tiingo" else "headline"
    assert skipped.reason == f"field {title!r} missing or not a string"
    assert skipped.ticker == (None if source == "tiingo" else "AAPL")  # finnhub: the first ticker's response


FIXTURES = Path(__file__).resolve().parents[2] / "src" / "devstack" / "fakes" / "fixtures" / "news"


def fixture_records(source: str) -> list[dict[str, Any]]:
    """The shipped Tiingo / Finnhub fixtures: records in each API's real shape."""
    records: list[dict[str, Any]] = json.loads((FIXTURES / f"{source}.json").read_text())
    return records


@pytest.mark.req("FR-018")
@pytest.mark.parametrize("payload", [{"articles": []}, {"data": [{"title": "x"}]}, None, "[]", 7])
@pytest.mark.parametrize("source", ["tiingo", "finnhub"])
def test_payloads_that_are_not_an_array_fail_the_source(source: str, payload: Any) -> None:
    with pytest.raises(MalformedSourcePayloadError, match="expected a JSON array"):
        if source == "tiingo":
            TiingoSource.parse(payload, TICKERS)
        else:
            FinnhubSource.parse(payload, "AAPL")


SECRET_LOOKING = "do-not-trace-this-value-7f3a"  # a value that must never reach a reason


def _tiingo_bad(good: dict[str, Any]) -> dict[int, tuple[Any, str]]:
    """index in the mixed payload → (bad record, the reason it is skipped for)."""
    return {
        1: ({k: v for k, v in good.items() if k != "title"}, "field 'title' missing or not a string"),
        3: ({**good, "publishedDate": f"2026-01-15T10:00:00 {SECRET_LOOKING}"},
            "field 'publishedDate' is not an ISO-8601 instant with offset"),
        4: ({**good, "publishedDate": "2026-01-15T10:00:00"},  # no offset: which instant?
            "field 'publishedDate' is not an ISO-8601 instant with offset"),
        6: ({**good, "tickers": SECRET_LOOKING}, "field 'tickers' missing or not an array"),
        7: (SECRET_LOOKING, "not an object"),
        9: ({**good, "description": 3}, "field 'description' is not a string"),
        10: ({**good, "url": "   "}, "field 'url' is empty"),
    }


def _finnhub_bad(good: dict[str, Any]) -> dict[int, tuple[Any, str]]:
    return {
        0: ({**good, "datetime": "1768471200"}, "field 'datetime' missing or not an integer"),
        2: ({**good, "datetime": True}, "field 'datetime' missing or not an integer"),
        3: ({**good, "datetime": -5}, "field 'datetime' is not an epoch in seconds"),
        5: ({**good, "datetime": 10**20}, "field 'datetime' is not an epoch in seconds"),
        6: ({k: v for k, v in good.items() if k != "headline"}, "field 'headline' missing or not a string"),
        8: ([SECRET_LOOKING], "not an object"),
        9: ({**good, "summary": {"text": SECRET_LOOKING}}, "field 'summary' is not a string"),
    }


def _mixed(good: list[dict[str, Any]], bad: dict[int, tuple[Any, str]]) -> list[Any]:
    """The good records in order, with each bad one at its index."""
    records, remaining = [], list(good)
    for index in range(len(good) + len(bad)):
        records.append(bad[index][0] if index in bad else remaining.pop(0))
    return records


@pytest.mark.req("FR-018", "FR-005", "FR-058")
@pytest.mark.parametrize("source", ["tiingo", "finnhub"])
def test_real_shaped_responses_mixing_good_and_bad_records_keep_every_good_article(source: str) -> None:
    good = fixture_records(source)
    if source == "tiingo":
        bad = _tiingo_bad(good[0])
        parse: Any = lambda payload: TiingoSource.parse(payload, TICKERS)  # noqa: E731
        ticker = None
    else:
        good = [record for record in good if record["related"] == "AAPL"] * 2  # one ticker's response
        bad = _finnhub_bad(good[0])
        parse = lambda payload: FinnhubSource.parse(payload, "AAPL")  # noqa: E731
        ticker = "AAPL"
    alone = parse(good)
    assert alone.skipped == [] and alone.articles

    mixed = parse(_mixed(good, bad))

    assert mixed.articles == alone.articles  # every well-formed article, in order
    assert [(s.index, s.reason, s.ticker) for s in mixed.skipped] == [
        (index, reason, ticker) for index, (_, reason) in sorted(bad.items())]
    assert all(SECRET_LOOKING not in skipped.reason for skipped in mixed.skipped)  # no payload in a reason


def test_published_headlines_are_served_from_then_on_and_filtered_by_date(server: FakeNewsServer) -> None:
    tiingo, finnhub = _sources(server)
    server.publish("finnhub", "TSLA", "Tesla opens a new factory", "Production starts next year.")
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    server.publish("tiingo", "TSLA", "An old Tesla story", published=old)
    assert any(a.headline == "Tesla opens a new factory" for a in finnhub.fetch(["TSLA"], *_window()).articles)
    assert not any(a.headline == "An old Tesla story" for a in tiingo.fetch(["TSLA"], *_window()).articles)
    assert any(a.headline == "An old Tesla story" for a in tiingo.fetch(["TSLA"], old.date(), old.date()).articles)


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
