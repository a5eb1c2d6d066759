"""The news pipeline's domain: items and their dedup key, sources, circuit breaker, storage, scoring.

- `model`: `NewsItem`, `item_id()` (dedup hash), timestamps and time-series buckets.
- `sources`: the Tiingo- and Finnhub-shaped HTTP clients (`requests`, traced by the Tracer's patch).
- `breaker`: the per-source circuit breaker (pure state machine; persisted by `store`).
- `store`: DynamoDB access for items, time series, breakers, audit records and tracked tickers.
- `sentiment`: VADER scoring into the label and signed score of specs/contracts.md.

Nothing here traces by itself: the Lambdas decide what is a subsegment or a silent failure path
(src/lib/tracing), so this package stays usable from tests, the devstack and other functions.
"""
