"""The data model's rules (specs/contracts.md): dedup key, timestamps, buckets, labels."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest

from lib.news.model import (
    InvalidTimestampError,
    Resolution,
    iso_ms,
    item_id,
    normalise_headline,
    parse_iso,
    sentiment_label,
)
from lib.news.sentiment import score

DAY = dt.date(2026, 1, 15)


def test_item_id_is_the_first_32_hex_of_sha256_of_normalised_headline_and_date() -> None:
    expected = hashlib.sha256(b"apple beats estimates|2026-01-15").hexdigest()[:32]
    assert item_id("Apple beats estimates", DAY) == expected


@pytest.mark.parametrize("variant", ["APPLE BEATS ESTIMATES", "Apple  beats\testimates!", " apple, beats: estimates ",
                                     "Apple beats estimates."])
def test_the_same_story_written_differently_has_one_dedup_key(variant: str) -> None:
    assert item_id(variant, DAY) == item_id("apple beats estimates", DAY)


def test_the_dedup_date_is_the_utc_day_and_another_day_is_another_item() -> None:
    late_in_new_york = dt.datetime(2026, 1, 15, 22, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    assert item_id("Story", late_in_new_york) == item_id("Story", dt.date(2026, 1, 16))
    assert item_id("Story", DAY) != item_id("Story", dt.date(2026, 1, 16))
    assert item_id("Apple beats estimates", DAY) != item_id("Apple misses estimates", DAY)
    assert normalise_headline("Café — déjà vu") == "café déjà vu"


@pytest.mark.req("FR-018")
def test_timestamps_are_utc_iso_with_milliseconds_and_naive_ones_are_refused() -> None:
    moment = dt.datetime(2026, 1, 15, 9, 5, 7, 891234, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert iso_ms(moment) == "2026-01-15T08:05:07.891Z"
    assert parse_iso("2026-01-15T08:05:07.891Z") == dt.datetime(2026, 1, 15, 8, 5, 7, 891000, tzinfo=dt.UTC)
    assert parse_iso("2026-01-15T09:05:07+01:00") == dt.datetime(2026, 1, 15, 8, 5, 7, tzinfo=dt.UTC)
    with pytest.raises(InvalidTimestampError):
        iso_ms(dt.datetime(2026, 1, 15))
    for bad in ("2026-01-15T08:05:07", "yesterday", ""):
        with pytest.raises(InvalidTimestampError):
            parse_iso(bad)
    assert sorted([iso_ms(dt.datetime(2026, 1, 15, 10, tzinfo=dt.UTC)), "2026-01-15T09:59:59.999Z"]) == [
        "2026-01-15T09:59:59.999Z", "2026-01-15T10:00:00.000Z"]


def test_buckets_are_aligned_and_kept_per_resolution() -> None:
    moment = dt.datetime(2026, 1, 15, 9, 47, 31, 250000, tzinfo=dt.UTC)
    starts = {r: iso_ms(r.bucket_start(moment)) for r in Resolution}
    assert starts == {Resolution.ONE_MINUTE: "2026-01-15T09:47:00.000Z",
                      Resolution.FIVE_MINUTES: "2026-01-15T09:45:00.000Z",
                      Resolution.ONE_HOUR: "2026-01-15T09:00:00.000Z", Resolution.ONE_DAY: "2026-01-15T00:00:00.000Z"}
    assert [r.retention.days for r in Resolution] == [1, 7, 30, 400]


def test_labels_follow_the_contract_thresholds_and_vader_scores_text() -> None:
    assert [sentiment_label(s) for s in (0.05, 0.0499, -0.0499, -0.05)] == ["positive", "neutral", "neutral",
                                                                            "negative"]
    bad = score("Regulators open an antitrust probe; shares crash", "Losses mount after a terrible quarter")
    assert bad.label == "negative" and -1 <= bad.score <= -0.05
    assert score("Microsoft schedules its annual developer conference").label == "neutral"
