// @vitest-environment happy-dom
import { afterEach, describe, expect, it } from "vitest";
import { ApiClient } from "../src/api";
import type { SentimentChart } from "../src/chart";
import { Dashboard } from "../src/dashboard";
import type { StreamCallbacks, StreamHandle } from "../src/dashboard";
import { connectionLabel, formatScore, timeAgo } from "../src/format";
import type { ConnectionState } from "../src/sse";
import { parseStreamEvent } from "../src/stream-events";
import { toColumns } from "../src/chart-data";
import { traceIdFromHeader } from "../src/trace";
import type { AlertRule, TimeseriesBucket } from "../src/types";
import { settle, until } from "./helpers";

const NOW = Date.UTC(2026, 10, 25, 8, 0, 0);
const SERVED = "1-6925e2a0-cccccccccccccccccccccccc";
const SCORED = "1-6925e29f-aaaaaaaaaaaaaaaaaaaaaaaa"; // the trace an item's score was computed in

interface Call {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: unknown;
}

/** A fake backend answering by method + path, with state for alert rules. */
class FakeBackend {
  readonly calls: Call[] = [];
  alerts: AlertRule[] = [{ alert_id: "al-1", ticker: "AAPL", direction: "below", threshold: -0.5, email: "ops@example.com" }];
  failAlerts = false;
  private nextAlert = 2;

  readonly fetch = async (input: string, init: RequestInit = {}): Promise<Response> => {
    const headers: Record<string, string> = {};
    new Headers(init.headers).forEach((value, key) => {
      headers[key.toLowerCase()] = value;
    });
    const method = init.method ?? "GET";
    this.calls.push({ method, url: input, headers, body: init.body ? JSON.parse(String(init.body)) : undefined });
    const url = new URL(input, "http://localhost");
    const reply = (body: unknown, status = 200) =>
      new Response(body === null ? null : JSON.stringify(body), {
        status,
        headers: { "Content-Type": "application/json", "x-amzn-trace-id": `Root=${SERVED};Sampled=1` },
      });
    const route = `${method} ${url.pathname}`;
    if (route === "GET /api/v2/tickers")
      return reply({ tickers: [{ ticker: "AAPL", name: "Apple Inc." }, { ticker: "MSFT", name: "Microsoft" }] });
    if (route === "GET /api/v2/sentiment")
      return reply({
        sentiment: {
          AAPL: { latest: { score: 0.42, label: "positive", analyzed_at: new Date(NOW - 120_000).toISOString() }, counts: { positive: 3, neutral: 1, negative: 0 } },
          MSFT: { latest: null, counts: { positive: 0, neutral: 0, negative: 0 } },
        },
      });
    if (route.startsWith("GET /api/v2/timeseries/"))
      return reply({
        ticker: url.pathname.split("/").pop(),
        resolution: url.searchParams.get("resolution"),
        buckets: [{ bucket_start: "2026-11-25T07:55:00.000Z", count: 2, avg_score: 0.3, positive: 1, neutral: 1, negative: 0 }],
      });
    if (route === "GET /api/v2/items")
      return reply({
        items:
          url.searchParams.get("ticker") === "AAPL"
            ? [
                { item_id: "h1", ticker: "AAPL", headline: "Apple ships", published_at: "2026-11-25T07:50:00.000Z", status: "analyzed", sentiment: { label: "positive", score: 0.6, trace_id: SCORED } },
                { item_id: "h2", ticker: "AAPL", headline: "Pending one", published_at: "2026-11-25T07:51:00.000Z", status: "pending", sentiment: null },
              ]
            : [],
        next_cursor: null,
      });
    if (route === "GET /api/v2/alerts") {
      if (this.failAlerts) return reply({ error: "internal", message: "boom" }, 500);
      return reply({ alerts: this.alerts });
    }
    if (route === "POST /api/v2/alerts") {
      const rule = { alert_id: `al-${this.nextAlert++}`, ...(JSON.parse(String(init.body)) as object) } as AlertRule;
      this.alerts.push(rule);
      return reply(rule, 201);
    }
    if (method === "DELETE" && url.pathname.startsWith("/api/v2/alerts/")) {
      const id = decodeURIComponent(url.pathname.split("/").pop()!);
      this.alerts = this.alerts.filter((a) => a.alert_id !== id);
      return reply(null, 204);
    }
    return reply({ error: "not_found", message: route }, 404);
  };

  roots(filter: (call: Call) => boolean = () => true): Set<string | null> {
    return new Set(this.calls.filter(filter).map((call) => traceIdFromHeader(call.headers["x-amzn-trace-id"])));
  }
}

class FakeStream implements StreamHandle {
  readonly sessionId = "session-1";
  state: ConnectionState = { status: "idle" };
  started = 0;
  reconnects = 0;
  stopped = false;
  callbacks!: StreamCallbacks;
  async start(): Promise<void> {
    this.started += 1;
  }
  stop(): void {
    this.stopped = true;
  }
  reconnectNow(): void {
    this.reconnects += 1;
  }
  emit(state: ConnectionState): void {
    this.state = state;
    this.callbacks.onState(state);
  }
}

let current: Dashboard | null = null;
afterEach(() => {
  current?.stop();
  current = null;
  document.body.replaceChildren();
});

async function mount(options: { debounce?: number; traceLink?: (id: string) => string } = {}) {
  const backend = new FakeBackend();
  const stream = new FakeStream();
  const charts: { buckets: readonly TimeseriesBucket[] }[] = [];
  const root = document.createElement("div");
  document.body.append(root);
  const dashboard = new Dashboard({
    root,
    api: Object.assign(new ApiClient({ fetch: backend.fetch }), { idToken: "id-token" }), // signed in
    createStream: (callbacks) => {
      stream.callbacks = callbacks;
      return stream;
    },
    chart: (_el, buckets) => {
      const chart = { buckets };
      charts.push(chart);
      return { update: (next) => (chart.buckets = next), destroy: () => undefined } satisfies SentimentChart;
    },
    now: () => NOW,
    refreshDebounceMs: options.debounce ?? 60_000,
    traceLink: options.traceLink,
  });
  current = dashboard;
  await dashboard.start();
  const $ = (testid: string) => root.querySelector(`[data-testid="${testid}"]`) as HTMLElement;
  const $$ = (testid: string) => [...root.querySelectorAll(`[data-testid="${testid}"]`)] as HTMLElement[];
  return { backend, stream, charts, root, dashboard, $, $$ };
}

describe("dashboard", () => {
  it("FR-016 renders a card per ticker from one page-load action under one trace root", async () => {
    const { backend, stream, charts, $ } = await mount();
    const aapl = $("ticker-card-AAPL");
    expect(aapl).not.toBeNull();
    expect($("ticker-card-MSFT")).not.toBeNull();
    expect(aapl.querySelector('[data-testid="ticker-label"]')!.textContent).toBe("positive");
    expect(aapl.querySelector('[data-testid="ticker-score"]')!.textContent).toBe("+0.42");
    expect(aapl.querySelector('[data-testid="count-positive"]')!.textContent).toContain("3");
    expect(aapl.querySelector('[data-testid="ticker-updated"]')!.textContent).toBe("2 min ago");
    expect($("ticker-card-MSFT").querySelector('[data-testid="ticker-label"]')!.textContent).toBe("no data");
    expect(charts).toHaveLength(2);
    expect(stream.started).toBe(1);

    // tickers, sentiment, 2 timeseries, alerts, 2 item pages: one action, one root, distinct parents.
    expect(backend.calls).toHaveLength(7);
    expect(backend.roots().size).toBe(1);
    expect(new Set(backend.calls.map((c) => c.headers["x-amzn-trace-id"])).size).toBe(7);
    for (const call of backend.calls) expect(call.headers["x-amzn-trace-id"]).not.toMatch(/Sampled/);
  });

  it("FR-082 shows the response trace id next to each panel", async () => {
    const { $, stream } = await mount();
    expect($("trace-tickers").textContent).toBe(`trace: ${SERVED}`);
    expect($("trace-alerts").textContent).toBe(`trace: ${SERVED}`);
    stream.callbacks.onConnection({
      sequence: 2,
      requestHeaders: { "X-Amzn-Trace-Id": "Root=1-6925e2a0-dddddddddddddddddddddddd;Parent=1111111111111111" },
      status: 200,
      responseTraceId: "1-6925e2a0-eeeeeeeeeeeeeeeeeeeeeeee",
      resumeSupported: true,
    });
    expect($("trace-feed").textContent).toBe("trace: 1-6925e2a0-eeeeeeeeeeeeeeeeeeeeeeee");
  });

  it("FR-010 each panel's trace id and each scored feed item's trace id link to the trace", async () => {
    const { $, $$, stream } = await mount({ traceLink: (id) => `trace.html?id=${id}` });
    const link = (element: HTMLElement) => element.querySelector("a.trace-link") as HTMLAnchorElement | null;
    expect(link($("trace-tickers"))?.getAttribute("href")).toBe(`trace.html?id=${SERVED}`);
    expect(link($("trace-alerts"))?.getAttribute("href")).toBe(`trace.html?id=${SERVED}`);
    const [history] = $$("feed-item").filter((item) => item.dataset.itemId === "h1");
    expect(link(history!)?.getAttribute("href")).toBe(`trace.html?id=${SCORED}`);
    expect(link(history!)?.textContent).toBe(SCORED);

    const live = "1-6925e2a1-bbbbbbbbbbbbbbbbbbbbbbbb";
    stream.callbacks.onMessage({
      event: "sentiment_update",
      id: "2026-11-25T08:00:00.000Z/ffffffffffffffffffffffffffffffff",
      data: JSON.stringify({ item_id: "ffffffffffffffffffffffffffffffff", ticker: "MSFT", headline: "Live one", label: "neutral",
        score: 0, published_at: "2026-11-25T07:59:00.000Z", analyzed_at: "2026-11-25T08:00:00.000Z", trace_id: live }),
    });
    const [fresh] = $$("feed-item").filter((item) => item.dataset.source === "live");
    expect(link(fresh!)?.getAttribute("href")).toBe(`trace.html?id=${live}`);
  });

  it("FR-010 without a link target (no config.json) trace ids stay plain text", async () => {
    const { $ } = await mount();
    expect($("trace-tickers").querySelector("a")).toBeNull();
    expect($("trace-tickers").textContent).toBe(`trace: ${SERVED}`);
  });

  it("FR-033 shows the connection state: connecting, live, reconnecting in N s, offline", async () => {
    const { stream, $ } = await mount();
    const pill = $("connection-state");
    stream.emit({ status: "connecting", sequence: 1 });
    expect([pill.dataset.state, pill.textContent]).toEqual(["connecting", "connecting"]);
    stream.emit({ status: "live", sequence: 1, traceId: null, since: NOW });
    expect([pill.dataset.state, pill.textContent]).toEqual(["live", "live"]);
    stream.emit({ status: "reconnecting", reason: "network", httpStatus: null, delayMs: 4000, retryAt: NOW + 4000, failures: 3, detail: "TypeError" });
    expect([pill.dataset.state, pill.textContent]).toEqual(["reconnecting", "reconnecting in 4 s"]);
    stream.emit({ status: "offline", reason: "fatal", detail: "HTTP 401" });
    expect([pill.dataset.state, pill.textContent]).toEqual(["offline", "offline"]);
  });

  it("FR-032 a sentiment_update lands on top of the live feed and updates its ticker card", async () => {
    const { stream, $, $$ } = await mount();
    expect($$("feed-item").map((li) => li.dataset.itemId)).toEqual(["h1"]); // pending items are not scored headlines
    const update = {
      item_id: "n1",
      ticker: "AAPL",
      headline: '<img src=x onerror="alert(1)"> Apple beats estimates',
      label: "negative",
      score: -0.31,
      published_at: "2026-11-25T07:59:00.000Z",
      analyzed_at: "2026-11-25T07:59:30.000Z",
    };
    stream.callbacks.onMessage({ event: "sentiment_update", id: "0001", data: JSON.stringify(update) });
    stream.callbacks.onMessage({ event: "sentiment_update", id: "0001", data: JSON.stringify(update) });
    const items = $$("feed-item");
    expect(items.map((li) => li.dataset.itemId)).toEqual(["n1", "h1"]);
    expect(items[0]!.dataset.source).toBe("live");
    expect(items[0]!.querySelector(".headline")!.textContent).toBe(update.headline);
    expect(items[0]!.querySelector("img")).toBeNull();
    const card = $("ticker-card-AAPL");
    expect(card.querySelector('[data-testid="ticker-label"]')!.textContent).toBe("negative");
    expect(card.querySelector('[data-testid="ticker-score"]')!.textContent).toBe("-0.31");
    expect(card.querySelector('[data-testid="count-negative"]')!.textContent).toContain("1");

    stream.callbacks.onMessage({ event: "metrics", id: undefined, data: '{"counts": {"positive": 3, "negative": 1}}' });
    expect($("stream-stats").textContent).toBe("4 live updates");
    stream.callbacks.onMessage({ event: "sentiment_update", id: "0002", data: "{not json" });
    expect($$("feed-item")).toHaveLength(2);
  });

  it("FR-016 re-reads a ticker under a fresh root after live updates", async () => {
    const { backend, stream } = await mount({ debounce: 5 });
    const loadRoot = [...backend.roots()][0];
    const before = backend.calls.length;
    const update = { item_id: "n2", ticker: "MSFT", headline: "h", label: "positive", score: 0.2, published_at: "", analyzed_at: "" };
    stream.callbacks.onMessage({ event: "sentiment_update", id: "1", data: JSON.stringify(update) });
    stream.callbacks.onMessage({ event: "sentiment_update", id: "2", data: JSON.stringify({ ...update, item_id: "n3" }) });
    expect(backend.calls).toHaveLength(before); // debounced: nothing yet
    await new Promise((resolve) => setTimeout(resolve, 30));
    await until(() => backend.calls.length === before + 2, "refresh of MSFT");
    const refresh = backend.calls.slice(before);
    expect(refresh.map((c) => c.url)).toEqual(["/api/v2/sentiment?tickers=MSFT", "/api/v2/timeseries/MSFT?resolution=5m"]);
    const roots = new Set(refresh.map((c) => traceIdFromHeader(c.headers["x-amzn-trace-id"])));
    expect(roots.size).toBe(1);
    expect(roots.has(loadRoot!)).toBe(false);
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(backend.calls).toHaveLength(before + 2); // two updates in a burst: one refresh
  });

  it("FR-016 the refresh button reloads every panel under a new root and hurries a reconnect", async () => {
    const { backend, stream, $ } = await mount();
    const first = backend.roots();
    stream.emit({ status: "reconnecting", reason: "network", httpStatus: null, delayMs: 8000, retryAt: NOW + 8000, failures: 4, detail: "" });
    const before = backend.calls.length;
    $("refresh").click();
    await until(() => backend.calls.length === before + 7, "reload");
    const second = backend.roots((call) => backend.calls.indexOf(call) >= before);
    expect(second.size).toBe(1);
    expect([...second][0]).not.toBe([...first][0]);
    expect(stream.reconnects).toBe(1);
  });

  it("creates and deletes alert rules through the form and the list", async () => {
    const { backend, $, $$, root } = await mount();
    expect($$("alert-item").map((li) => li.dataset.alertId)).toEqual(["al-1"]);

    const form = $("alert-form") as HTMLFormElement;
    ($("alert-ticker") as HTMLSelectElement).value = "MSFT";
    ($("alert-direction") as HTMLSelectElement).value = "above";
    ($("alert-threshold") as HTMLInputElement).value = "1.5";
    const before = backend.calls.length;
    form.dispatchEvent(new Event("submit", { cancelable: true, bubbles: true }));
    await settle();
    expect($("alert-error").hidden).toBe(false);
    expect($("alert-error").textContent).toContain("between -1 and 1");
    expect(backend.calls).toHaveLength(before);

    ($("alert-threshold") as HTMLInputElement).value = "0.25";
    form.dispatchEvent(new Event("submit", { cancelable: true, bubbles: true }));
    await until(() => $$("alert-item").length === 2, "new rule");
    expect(backend.calls.at(-1)).toMatchObject({
      method: "POST",
      body: { ticker: "MSFT", direction: "above", threshold: 0.25 },
    });
    expect($("alert-error").hidden).toBe(true);

    const first = root.querySelector('[data-alert-id="al-1"] [data-testid="alert-delete"]') as HTMLButtonElement;
    first.click();
    await until(() => $$("alert-item").length === 1, "deleted");
    expect(backend.calls.at(-1)).toMatchObject({ method: "DELETE", url: "/api/v2/alerts/al-1" });
    expect($$("alert-item").map((li) => li.dataset.alertId)).toEqual(["al-2"]);
  });

  it("FR-016 signs in, then lists the user's rules with the ID token in Authorization", async () => {
    const backend = new FakeBackend();
    const root = document.createElement("div");
    document.body.append(root);
    const signIns: string[] = [];
    const dashboard = new Dashboard({
      root,
      api: new ApiClient({ fetch: backend.fetch }),
      createStream: (callbacks) => Object.assign(new FakeStream(), { callbacks }),
      now: () => NOW,
      signIn: async (username, password) => {
        signIns.push(`${username}:${password}`);
        return { username, idToken: "ann-id-token", expiresAt: NOW + 3_600_000 };
      },
    });
    current = dashboard;
    await dashboard.start();
    const $ = (testid: string) => root.querySelector(`[data-testid="${testid}"]`) as HTMLElement;
    expect(backend.calls.some((call) => call.url.startsWith("/api/v2/alerts"))).toBe(false); // signed out: not asked
    expect($("alert-form").hidden).toBe(true);
    expect($("alert-list").textContent).toContain("Sign in");

    ($("sign-in-username") as HTMLInputElement).value = "ann@example.com";
    ($("sign-in-password") as HTMLInputElement).value = "secret-pass";
    $("sign-in-form").dispatchEvent(new Event("submit", { cancelable: true, bubbles: true }));
    await until(() => root.querySelectorAll('[data-testid="alert-item"]').length === 1, "rules after sign-in");
    expect(signIns).toEqual(["ann@example.com:secret-pass"]);
    const listed = backend.calls.find((call) => call.url === "/api/v2/alerts")!;
    expect(listed.headers.authorization).toBe("ann-id-token");
    expect(backend.calls.filter((c) => !c.url.startsWith("/api/v2/alerts")).every((c) => !c.headers.authorization))
      .toBe(true); // the token goes to the alert routes only
    expect($("alert-form").hidden).toBe(false);
    expect($("signed-in-as").textContent).toContain("ann@example.com");
  });

  it("FR-082 shows a failed load in a banner with the trace id to look up", async () => {
    const backend = new FakeBackend();
    backend.failAlerts = true;
    const root = document.createElement("div");
    const dashboard = new Dashboard({
      root,
      api: Object.assign(new ApiClient({ fetch: backend.fetch }), { idToken: "id-token" }), // signed in
      createStream: (callbacks) => Object.assign(new FakeStream(), { callbacks }),
      now: () => NOW,
    });
    current = dashboard;
    await dashboard.start();
    const banner = root.querySelector('[data-testid="error-banner"]') as HTMLElement;
    expect(banner.hidden).toBe(false);
    expect(banner.textContent).toContain("boom");
    expect(banner.textContent).toContain(SERVED);
  });
});

describe("display helpers", () => {
  it("FR-033 labels every connection state with its word", () => {
    expect(connectionLabel({ status: "idle" }, NOW).state).toBe("connecting");
    expect(connectionLabel({ status: "reconnecting", reason: "graceful", httpStatus: null, delayMs: 1500, retryAt: NOW + 1500, failures: 0, detail: "" }, NOW)).toEqual({
      state: "reconnecting",
      text: "reconnecting in 2 s",
    });
    expect(connectionLabel({ status: "reconnecting", reason: "graceful", httpStatus: null, delayMs: 0, retryAt: NOW - 10, failures: 0, detail: "" }, NOW).text).toBe(
      "reconnecting in 0 s",
    );
  });

  it("formats scores and ages", () => {
    expect([formatScore(0.421), formatScore(-0.1), formatScore(0), formatScore(-0.001)]).toEqual(["+0.42", "-0.10", "0.00", "0.00"]);
    expect(timeAgo(new Date(NOW - 2000).toISOString(), NOW)).toBe("just now");
    expect(timeAgo(new Date(NOW - 42_000).toISOString(), NOW)).toBe("42 s ago");
    expect(timeAgo(new Date(NOW - 3 * 3600_000).toISOString(), NOW)).toBe("3 h ago");
    expect(timeAgo("garbage", NOW)).toBe("");
  });

  it("parses the contract's SSE frames and drops malformed ones", () => {
    expect(parseStreamEvent({ event: "reconnect", id: "x/1", data: '{"reason": "lifetime", "reconnect_after_ms": 0}' })).toEqual({ type: "reconnect", reason: "lifetime", reconnectAfterMs: 0 });
    expect(parseStreamEvent({ event: "heartbeat", id: undefined, data: '{"ts": "2026-11-25T08:00:00.000Z"}' })).toEqual({ type: "heartbeat", ts: "2026-11-25T08:00:00.000Z" });
    expect(parseStreamEvent({ event: "sentiment_update", id: "1", data: '{"item_id": "a", "ticker": "X", "headline": "h", "label": "great", "score": 1}' })).toBeNull();
    expect(parseStreamEvent({ event: "whatever", id: undefined, data: "{}" })).toBeNull();
  });

  it("lays buckets out for uPlot in time order, with no score for empty buckets", () => {
    const bucket = (start: string, count: number, avg: number) => ({ bucket_start: start, count, avg_score: avg, positive: 0, neutral: 0, negative: 0 });
    const [x, score, count] = toColumns([bucket("2026-11-25T08:05:00.000Z", 1, 0.5), bucket("2026-11-25T08:00:00.000Z", 0, 0), bucket("bad", 1, 1)]);
    expect(x).toEqual([Date.UTC(2026, 10, 25, 8, 0) / 1000, Date.UTC(2026, 10, 25, 8, 5) / 1000]);
    expect(score).toEqual([null, 0.5]);
    expect(count).toEqual([0, 1]);
  });
});
