"""One ingestion run: fetch news for the tracked tickers, store new items, hand them to analysis.

Five of the seven silent failure paths of FR-002 live here, each in `silent_failure()`:
circuit-breaker load (1) and save (2), audit write (3), SNS publish (4), self-healing fetch (6),
and the parallel fetcher's error aggregation (7). A failed path is recorded (error subsegment +
FR-043 metric) and the run goes on as designed: an unreadable breaker counts as closed, an
unpublished item stays `pending` until self-healing re-publishes it, a failing source leaves the
others' news flowing.

Example (not run: needs a Lambda context and the function's AWS resources):
    >>> report = run_ingestion(IngestionSettings.from_env(), request_id="r-1")   # doctest: +SKIP
    >>> report.new_items                                                          # doctest: +SKIP
    12
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from aws_lambda_powertools.utilities import parameters

from lib.config import ConfigurationError, require_env
from lib.metrics import PER_SOURCE_DIMENSION, Metric, put_metric
from lib.news.breaker import BreakerPolicy, BreakerState, BreakerStatus
from lib.news.model import SOURCES, Article, NewsItem
from lib.news.sources import FinnhubSource, NewsSource, SourceError, TiingoSource
from lib.news.store import AWS_ERRORS, ConfigTable, NewsTable, StateTable, sns_client
from lib.tracing.header import current_trace_id
from lib.tracing.powertools import (
    SilentFailurePath,
    annotate,
    in_caller_trace,
    lambda_logger,
    lambda_tracer,
    record_skipped,
    silent_failure,
)

tracer = lambda_tracer()
logger = lambda_logger()

LOOKBACK = dt.timedelta(days=1)
SECRET_MAX_AGE_S = 300
SELF_HEAL_BATCH = 100  # per run: a backlog drains over several runs instead of eating one run's time


@dataclass(frozen=True)
class IngestionSettings:
    news_table: str
    state_table: str
    config_table: str
    topic_arn: str
    secret_name: str
    self_heal_after: dt.timedelta
    tiingo_base_url: str
    finnhub_base_url: str
    breaker_policy: BreakerPolicy
    high_latency_after_s: float

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> IngestionSettings:
        """Read exactly the env of stack.json's `ingestion` entry; a missing one is a ConfigurationError."""
        source = os.environ if env is None else env

        def need(name: str) -> str:
            return require_env((name,), source)[name]

        return cls(
            news_table=need("NEWS_TABLE"), state_table=need("STATE_TABLE"), config_table=need("CONFIG_TABLE"),
            topic_arn=need("ANALYSIS_TOPIC_ARN"), secret_name=need("NEWS_API_SECRET_NAME"),
            self_heal_after=dt.timedelta(minutes=float(need("SELF_HEAL_AFTER_MINUTES"))),
            tiingo_base_url=need("TIINGO_BASE_URL"), finnhub_base_url=need("FINNHUB_BASE_URL"),
            breaker_policy=BreakerPolicy(
                failure_threshold=int(need("BREAKER_FAILURE_THRESHOLD")),
                cooldown=dt.timedelta(seconds=float(need("BREAKER_COOLDOWN_S"))),
            ),
            high_latency_after_s=float(need("HIGH_LATENCY_ALERT_S")),
        )


@dataclass
class RunReport:
    """What one run did; also the audit record (state table) and the handler's response."""

    tickers: int = 0
    fetched: dict[str, int] = field(default_factory=dict)
    failed_sources: dict[str, str] = field(default_factory=dict)
    skipped_sources: list[str] = field(default_factory=list)
    breakers: dict[str, str] = field(default_factory=dict)
    new_items: int = 0
    duplicates: int = 0
    published: int = 0
    publish_failures: int = 0
    self_healed: int = 0
    duration_ms: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class SnsPublishError(RuntimeError):
    """Some messages were not published; their items stay `pending` for self-healing."""


class SourceFetchErrors(RuntimeError):
    """The aggregate of this run's failed sources (path 7)."""

    def __init__(self, errors: Mapping[str, Exception]):
        detail = "; ".join(f"{type(error).__name__}: {error}" for error in errors.values())
        super().__init__(f"{len(errors)} news source(s) failed: {detail}")


def api_keys(secret_name: str) -> dict[str, str]:
    """`{"tiingo": key, "finnhub": key}` from Secrets Manager, cached for 5 minutes per environment."""
    value = parameters.get_secret(secret_name, transform="json", max_age=SECRET_MAX_AGE_S)
    if not isinstance(value, dict) or any(not isinstance(value.get(s), str) or not value[s] for s in SOURCES):
        raise ConfigurationError(f"secret {secret_name} must be JSON with a non-empty key for each of {SOURCES}")
    return {source: str(value[source]) for source in SOURCES}


def news_sources(settings: IngestionSettings, keys: Mapping[str, str]) -> list[NewsSource]:
    return [TiingoSource(settings.tiingo_base_url, keys["tiingo"]),
            FinnhubSource(settings.finnhub_base_url, keys["finnhub"])]


def load_breakers(state: StateTable, names: Sequence[str]) -> dict[str, BreakerState]:
    """Silent path 1: a breaker that cannot be read counts as closed (the news keeps flowing)."""
    loaded: dict[str, BreakerState] = {}
    with silent_failure(tracer, SilentFailurePath.CIRCUIT_BREAKER_LOAD, handles=AWS_ERRORS):
        loaded = state.load_breakers()
    return {name: loaded.get(name, BreakerState.closed(name)) for name in names}


def save_breakers(state: StateTable, before: Mapping[str, BreakerState], after: Mapping[str, BreakerState],
                  now: dt.datetime) -> None:
    """Silent path 2, once per breaker that changed: a lost save only delays opening or closing it."""
    for name, new_state in after.items():
        if new_state == before.get(name):
            continue
        with silent_failure(tracer, SilentFailurePath.CIRCUIT_BREAKER_SAVE, handles=AWS_ERRORS):
            annotate(tracer, news_source=name, breaker_state=str(new_state.state))
            state.save_breaker(new_state, now)


@tracer.capture_method(capture_response=False)
def fetch_source(source: NewsSource, tickers: Sequence[str], since: dt.date, until: dt.date) -> list[Article]:
    """One source's fetch (runs in a worker thread; its HTTP calls nest under this subsegment).

    Records the source skipped as unreadable are counted (`MalformedArticles`, also per `Source`)
    and listed on this subsegment (index, reason: never their content); its other articles go on.
    """
    annotate(tracer, news_source=source.name)
    fetched = source.fetch(tickers, since, until)
    annotate(tracer, article_count=len(fetched.articles))
    record_skipped(tracer, "malformed_articles",
                   [{"index": skip.index, "reason": skip.reason, "ticker": skip.ticker} for skip in fetched.skipped])
    if fetched.skipped:
        put_metric(Metric.MALFORMED_ARTICLES, len(fetched.skipped), per=(PER_SOURCE_DIMENSION, source.name))
        logger.warning("malformed articles skipped", extra={"news_source": source.name,
                                                            "skipped": len(fetched.skipped),
                                                            "kept": len(fetched.articles)})
    return fetched.articles


@tracer.capture_method(capture_response=False)
def fetch_all(sources: Sequence[NewsSource], tickers: Sequence[str], now: dt.datetime,
              ) -> tuple[dict[str, list[Article]], dict[str, Exception]]:
    """All sources in parallel; a source's failure is aggregated (silent path 7), a bug is raised."""
    since, until = (now - LOOKBACK).date(), now.date()
    results: dict[str, list[Article]] = {}
    errors: dict[str, Exception] = {}
    if sources:
        with ThreadPoolExecutor(max_workers=len(sources), thread_name_prefix="news-source") as pool:
            futures = {source.name: pool.submit(in_caller_trace(tracer, fetch_source), source, tickers, since, until)
                       for source in sources}
        for name, future in futures.items():
            error = future.exception()
            if error is None:
                results[name] = future.result()
            elif isinstance(error, SourceError):
                errors[name] = error
            else:
                raise error
    with silent_failure(tracer, SilentFailurePath.PARALLEL_FETCH, handles=(SourceFetchErrors,)):
        annotate(tracer, sources_ok=len(results), sources_failed=len(errors))
        if errors:
            raise SourceFetchErrors(errors)
    return results, errors


@tracer.capture_method(capture_response=False)
def store_new_items(news: NewsTable, articles: Sequence[Article], now: dt.datetime) -> tuple[list[NewsItem], int]:
    """Dedup (normalised headline + publish date) and store new items `pending`; returns (new, duplicates).

    An item is a duplicate when its `item_id` is already stored, whatever its `published_at` (the
    same story reported at another minute by the other source). `item_id` is only the hash key, so
    no BatchGetItem can answer that; instead one `ticker-index` Query per ticker of this run's
    articles, over their publish days, finds what is already stored: a run's DynamoDB reads grow
    with its tickers, not its articles. What the index does not show (an item stored under another
    ticker, or written too recently for the index) gets the consistent query on `item_id`, then the
    conditional put, the race-safe dedup write; only those new items cost calls of their own.
    """
    candidates: dict[str, NewsItem] = {}
    duplicates = 0
    for article in articles:
        item = NewsItem.from_article(article, now)
        if item.item_id in candidates:
            duplicates += 1
        else:
            candidates[item.item_id] = item
    stored = known_item_ids(news, candidates.values())
    new: list[NewsItem] = []
    for item in candidates.values():
        if item.item_id in stored or news.exists(item.item_id) or not news.put_new(item):
            duplicates += 1
        else:
            new.append(item)
    return new, duplicates


def known_item_ids(news: NewsTable, items: Iterable[NewsItem]) -> set[str]:
    """Which of `items` the `ticker-index` shows stored: one Query per ticker, over all the items' days."""
    items = list(items)
    if not items:
        return set()
    days = [dt.date.fromisoformat(item.published_at[:10]) for item in items]
    found: set[str] = set()
    for ticker in sorted({item.ticker for item in items}):
        found |= news.item_ids_of_ticker(ticker, min(days), max(days))
    return found & {item.item_id for item in items}


def publish(topic_arn: str, messages: Sequence[Mapping[str, str]]) -> int:
    """Silent path 4: publish each message; one failure does not stop the others. Returns the failures."""
    if not messages:
        return 0
    failed: list[str] = []
    with silent_failure(tracer, SilentFailurePath.SNS_PUBLISH, handles=(SnsPublishError,)):
        annotate(tracer, message_count=len(messages))
        for message in messages:
            try:
                sns_client().publish(TopicArn=topic_arn, Message=json.dumps(message, separators=(",", ":")))
            except AWS_ERRORS as error:  # recorded on the Publish subsegment; raised below
                failed.append(f"{message['item_id']}: {type(error).__name__}")
        if failed:
            raise SnsPublishError(f"{len(failed)} of {len(messages)} messages not published: {'; '.join(failed)}")
    return len(failed)


@tracer.capture_method(capture_response=False)
def self_heal(news: NewsTable, topic_arn: str, cutoff: dt.datetime) -> tuple[int, int]:
    """Re-publish items `pending` since before `cutoff` (silent path 6 for the fetch). Returns (sent, failed)."""
    stuck: list[dict[str, str]] = []
    with silent_failure(tracer, SilentFailurePath.SELF_HEALING_FETCH, handles=AWS_ERRORS):
        stuck = news.pending_since_before(cutoff, SELF_HEAL_BATCH)
        annotate(tracer, stuck_items=len(stuck))
    failed = publish(topic_arn, stuck)
    return len(stuck) - failed, failed


def write_audit(state: StateTable, started: dt.datetime, request_id: str, report: RunReport) -> None:
    """Silent path 3: the audit trail is for operators; losing one record must not lose the run."""
    with silent_failure(tracer, SilentFailurePath.AUDIT_WRITE, handles=AWS_ERRORS):
        state.write_audit(started, request_id, {**report.as_dict(), "xray_trace_id": current_trace_id() or ""})


def run_ingestion(settings: IngestionSettings, request_id: str) -> RunReport:
    started, clock = dt.datetime.now(dt.UTC), time.monotonic()
    news, state = NewsTable(settings.news_table), StateTable(settings.state_table)
    report = RunReport()

    tickers = ConfigTable(settings.config_table).tracked_tickers()
    report.tickers = len(tickers)
    sources = news_sources(settings, api_keys(settings.secret_name))
    before = load_breakers(state, [source.name for source in sources])
    policy = settings.breaker_policy
    allowed = [source for source in sources if policy.allows(before[source.name], started)]
    report.skipped_sources = [source.name for source in sources if source not in allowed]

    results, errors = fetch_all(allowed if tickers else [], tickers, started)
    after = dict(before)
    for source in allowed if tickers else []:
        trial = before[source.name].trial()
        after[source.name] = (trial.after_failure(policy, started) if source.name in errors
                              else trial.after_success())
    for name, breaker in after.items():
        if breaker.state is BreakerStatus.OPEN and breaker != before[name]:
            logger.warning("circuit breaker open", extra={"news_source": name, "failures": breaker.failures})
    save_breakers(state, before, after, started)
    report.breakers = {name: str(breaker.state) for name, breaker in after.items()}
    report.fetched = {name: len(articles) for name, articles in results.items()}
    report.failed_sources = {name: type(error).__name__ for name, error in errors.items()}

    articles = [article for source in sources for article in results.get(source.name, [])]
    new_items, report.duplicates = store_new_items(news, articles, started)
    report.new_items = len(new_items)
    report.publish_failures = publish(settings.topic_arn, [item.message() for item in new_items])
    report.published = report.new_items - report.publish_failures
    report.self_healed, healing_failures = self_heal(news, settings.topic_arn, started - settings.self_heal_after)
    report.publish_failures += healing_failures

    report.duration_ms = int((time.monotonic() - clock) * 1000)
    write_audit(state, started, request_id, report)
    put_metric(Metric.NEW_ITEMS_INGESTED, report.new_items)  # every run, 0 included: the heartbeat
    if time.monotonic() - clock > settings.high_latency_after_s:
        put_metric(Metric.HIGH_LATENCY_ALERT, 1)
    return report
