"""The environment's shared poll window (FR-007): one query serves every stream, bounded, never a gap.

The window is given a stand-in for its DynamoDB query (an in-memory index) and a clock, so its
decisions can be followed exactly; the real query runs against moto in test_sse_feed_query.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambdas.sse_streaming.events import AFTER_ALL, BEFORE_ALL, Position
from lambdas.sse_streaming.feed import AnalysedFeed, FeedItem, Marker, QueryResult


def item(ts: str, n: int) -> FeedItem:
    return FeedItem(Position(ts, f"{n:032x}"), "AAPL", f"headline {n}", "positive", 0.5, ts, ts)


def at(second: int, ms: int = 0) -> str:
    return f"2026-11-25T08:00:{second:02d}.{ms:03d}Z"


@dataclass
class Index:
    """Analysed items as the status-index holds them, and the queries asked of it."""

    items: list[FeedItem] = field(default_factory=list)
    queries: list[tuple[Position, str]] = field(default_factory=list)

    def query(self, table: str, after: Position, until_ts: str, limit: int, visible_ts: str | None) -> QueryResult:
        self.queries.append((after, until_ts))
        found = sorted((i for i in self.items if after < i.position <= Position(until_ts, AFTER_ALL)),
                       key=lambda i: i.position)
        settling = [i.position.ts for i in self.items if until_ts < i.position.ts <= (visible_ts or until_ts)]
        return QueryResult(found, max(after, Position(until_ts, AFTER_ALL)), 1.0, min(settling, default=None))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.req("FR-007")
def test_one_query_per_ttl_serves_every_stream() -> None:
    index, clock = Index([item(at(1), 1), item(at(2), 2)]), Clock()
    feed = AnalysedFeed(query=index.query, clock=clock)
    start = Position(at(0), BEFORE_ALL)
    first = feed.read("news", start, at(3), ttl_s=1.0)
    assert (first.trigger, first.cache_hit) == ("cold_start", False)
    assert [i.item_id for i in first.items] == [f"{1:032x}", f"{2:032x}"]
    second = feed.read("news", first.items[0].position, at(3), ttl_s=1.0)  # another stream, further on
    assert (second.trigger, second.cache_hit, len(second.items)) == ("fresh", True, 1)
    assert len(index.queries) == 1 and second.cache_hit_rate == 0.5
    index.items.append(item(at(4), 3))
    clock.now += 1.0
    third = feed.read("news", second.horizon, at(5), ttl_s=1.0)
    assert (third.trigger, [i.item_id for i in third.items]) == ("ttl_expired", [f"{3:032x}"])
    assert index.queries[-1][0] == Position(at(3), AFTER_ALL)  # continues from the window's horizon
    assert third.cache_entry_count == 3 and third.cache_max_entries == feed.max_entries


@pytest.mark.req("FR-007", "FR-081")
def test_an_item_seen_settling_makes_the_next_read_due_once_it_has_settled() -> None:
    index, clock = Index([item(at(1), 1), item(at(3, 400), 2)]), Clock()
    feed = AnalysedFeed(query=index.query, clock=clock)
    first = feed.read("news", Position(at(0), BEFORE_ALL), at(3), ttl_s=10, visible_ts=at(3, 500))
    assert [i.item_id for i in first.items] == [f"{1:032x}"] and first.next_settle_ts == at(3, 400)
    early = feed.read("news", first.horizon, at(3, 399), ttl_s=10, visible_ts=at(3, 899))
    assert (early.trigger, early.items, early.next_settle_ts) == ("fresh", [], at(3, 400))
    due = feed.read("news", first.horizon, at(3, 400), ttl_s=10, visible_ts=at(3, 900))
    assert (due.trigger, [i.item_id for i in due.items], due.next_settle_ts) == ("settle_due", [f"{2:032x}"], None)
    assert len(index.queries) == 2  # still one query per refresh, within the TTL
    assert feed.read("news", due.horizon, at(3, 600), ttl_s=10).trigger == "fresh"


@pytest.mark.req("FR-007", "FR-081")
def test_a_moved_marker_makes_the_next_read_a_query_and_the_window_remembers_it_across_streams() -> None:
    index, clock = Index([item(at(1), 1)]), Clock()
    feed = AnalysedFeed(query=index.query, clock=clock)
    first = feed.read("news", Position(at(0), BEFORE_ALL), at(2), ttl_s=30, marker=Marker(1, at(1)))
    assert first.trigger == "cold_start" and feed.marker_version == 1
    assert not feed.has_news(Marker(1, at(1))) and not feed.has_news(Marker(0, None))  # a stale read: no news
    unchanged = feed.read("news", first.horizon, at(3), ttl_s=30, marker=Marker(1, at(1)))
    assert (unchanged.trigger, len(index.queries)) == ("fresh", 1)  # within the TTL, no query without news
    # The stream ends here; an item is scored in the gap and the marker moves. The next stream on this
    # environment resumes from its Last-Event-ID and its first marker read finds the move.
    index.items.append(item(at(4), 2))
    resumed_marker = Marker(2, at(4))
    assert feed.has_news(resumed_marker)
    resumed = feed.read("news", unchanged.horizon, at(5), ttl_s=30, marker=resumed_marker)
    assert (resumed.trigger, [i.item_id for i in resumed.items]) == ("marker_moved", [f"{2:032x}"])
    assert index.queries[-1][0] == Position(at(2), AFTER_ALL) and feed.marker_version == 2  # the horizon on
    again = feed.read("news", resumed.items[-1].position, at(6), ttl_s=30, marker=resumed_marker)
    assert (again.trigger, again.items) == ("fresh", [])  # delivered once


@pytest.mark.req("FR-007", "FR-081")
def test_a_cursor_behind_the_window_is_served_alone_and_leaves_the_window_as_it_was() -> None:
    index, clock = Index([item(at(s), s) for s in range(1, 9)]), Clock()
    feed = AnalysedFeed(max_entries=3, query=index.query, clock=clock)
    recent = feed.read("news", Position(at(0), BEFORE_ALL), at(9), ttl_s=10)
    assert recent.cache_entry_count == 3  # bounded: the oldest five were evicted
    old = feed.read("news", Position(at(2), AFTER_ALL), at(9), ttl_s=10)
    assert old.trigger == "behind_window" and [i.position.ts for i in old.items] == [at(s) for s in range(3, 9)]
    again = feed.read("news", Position(at(6), AFTER_ALL), at(9), ttl_s=10)
    assert again.trigger == "fresh" and [i.position.ts for i in again.items] == [at(7), at(8)]


@pytest.mark.req("FR-081", "FR-007")
@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 59), st.integers(0, 3)), min_size=1, max_size=40),
       st.integers(2, 6), st.lists(st.integers(0, 2), min_size=1, max_size=12))
def test_streams_reading_through_the_window_see_every_item_once_in_order(
    arrivals: list[tuple[int, int]], capacity: int, reads: list[int]
) -> None:
    """Items arrive over time; streams at different cursors read through an often-evicting window."""
    index, clock = Index(), Clock()
    feed = AnalysedFeed(max_entries=capacity, query=index.query, clock=clock)
    arrivals.sort()
    streams = [Position(at(0), BEFORE_ALL)] * 3
    seen: list[list[FeedItem]] = [[], [], []]
    horizon_second = 0
    for step, stream in enumerate(reads):
        horizon_second = min(59, horizon_second + 5)
        index.items = [item(at(s, ms), n) for n, (s, ms) in enumerate(arrivals) if s <= horizon_second]
        clock.now += 0.6 if step % 2 else 0.1
        read = feed.read("news", streams[stream], at(horizon_second, 999), ttl_s=0.5)
        seen[stream] += read.items
        streams[stream] = max([streams[stream], read.horizon] + [i.position for i in read.items])
    for stream, cursor in enumerate(streams):
        expected = sorted((i for i in index.items if i.position <= cursor), key=lambda i: i.position)
        assert seen[stream] == expected  # nothing skipped, nothing twice, in order
