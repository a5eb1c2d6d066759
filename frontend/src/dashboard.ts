/**
 * The dashboard: tracked tickers (latest sentiment, counts, chart), the live feed, the connection
 * state, alert rules. Plain DOM, text set with textContent only (headlines are untrusted input).
 *
 * Every user action (page load, refresh, resolution change, alert create/delete) gets one fresh
 * trace root; each panel shows the trace id of the request that last filled it.
 */
import type { Session } from "./auth";
import { ApiError, displayTraceId } from "./api";
import type { ApiClient, RequestTrace } from "./api";
import type { ChartFactory, SentimentChart } from "./chart";
import { clockTime, connectionLabel, formatScore, timeAgo } from "./format";
import type { ConnectionInfo, ConnectionState, SseMessage } from "./sse";
import { parseStreamEvent } from "./stream-events";
import { TRACE_ID_PATTERN } from "./trace";
import type { TraceContext } from "./trace";
import { RESOLUTIONS } from "./types";
import type {
  AlertDirection,
  AlertRule,
  Resolution,
  SentimentLabel,
  SentimentUpdate,
  Ticker,
  TickerSentiment,
  TimeseriesBucket,
} from "./types";

/** What the dashboard needs from the SSE client. */
export interface StreamHandle {
  readonly sessionId: string;
  readonly state: ConnectionState;
  start(): Promise<void>;
  stop(): void;
  reconnectNow(): void;
}

export interface StreamCallbacks {
  onMessage: (message: SseMessage) => void;
  onState: (state: ConnectionState) => void;
  onConnection: (info: ConnectionInfo) => void;
}

export interface DashboardOptions {
  root: HTMLElement;
  api: ApiClient;
  createStream: (callbacks: StreamCallbacks) => StreamHandle;
  chart?: ChartFactory;
  now?: () => number;
  /** Wait after a live update before re-reading that ticker's series (batches bursts). */
  refreshDebounceMs?: number;
  feedLimit?: number;
  resolution?: Resolution;
  /** The URL a trace id links to (trace-links.ts); without it trace ids are plain text. */
  traceLink?: (traceId: string) => string;
  /** Sign-in (auth.ts, against the configured Cognito endpoint); without it alert rules cannot be managed. */
  signIn?: (username: string, password: string) => Promise<Session>;
}

interface FeedEntry {
  item_id: string;
  ticker: string;
  headline: string;
  label: SentimentLabel | null;
  score: number | null;
  at: string;
  url?: string;
  /** The X-Ray trace the score was computed in (null on items scored before it was kept). */
  traceId: string | null;
  source: "live" | "history";
}

interface Card {
  element: HTMLElement;
  label: HTMLElement;
  score: HTMLElement;
  when: HTMLElement;
  counts: HTMLElement;
  bar: HTMLElement;
  chartBox: HTMLElement;
  chart: SentimentChart | null;
  sentiment: TickerSentiment;
  buckets: TimeseriesBucket[];
}

type Attrs = Record<string, string | undefined>;

function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: (Node | string | null)[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined) continue;
    if (key === "class") element.className = value;
    else element.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null) continue;
    element.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return element;
}

const EMPTY_COUNTS = { positive: 0, neutral: 0, negative: 0 };

export class Dashboard {
  private readonly api: ApiClient;
  private readonly chartFactory: ChartFactory | undefined;
  private readonly now: () => number;
  private readonly debounceMs: number;
  private readonly feedLimit: number;
  private readonly traceLink: ((traceId: string) => string) | undefined;
  private resolution: Resolution;
  private readonly stream: StreamHandle;

  private tickers: Ticker[] = [];
  private readonly cards = new Map<string, Card>();
  private feed: FeedEntry[] = [];
  private alerts: AlertRule[] = [];
  private connection: ConnectionState = { status: "idle" };
  private readonly pendingRefresh = new Map<string, ReturnType<typeof setTimeout>>();
  private ticking: ReturnType<typeof setInterval> | null = null;

  // Elements
  readonly root: HTMLElement;
  private readonly stateEl: HTMLElement;
  private readonly statsEl: HTMLElement;
  private readonly bannerEl: HTMLElement;
  private readonly grid: HTMLElement;
  private readonly feedList: HTMLElement;
  private readonly feedEmpty: HTMLElement;
  private readonly alertList: HTMLElement;
  private readonly alertForm: HTMLFormElement;
  private readonly alertTicker: HTMLSelectElement;
  private readonly alertError: HTMLElement;
  private readonly signInForm: HTMLFormElement;
  private readonly signedInEl: HTMLElement;
  private readonly signInFn: ((username: string, password: string) => Promise<Session>) | undefined;
  private readonly traceEls: Record<"tickers" | "feed" | "alerts", HTMLElement>;
  private readonly sessionEl: HTMLElement;
  private readonly refreshButton: HTMLButtonElement;
  private readonly resolutionSelect: HTMLSelectElement;

  constructor(options: DashboardOptions) {
    this.root = options.root;
    this.api = options.api;
    this.chartFactory = options.chart;
    this.now = options.now ?? (() => Date.now());
    this.debounceMs = options.refreshDebounceMs ?? 2000;
    this.feedLimit = options.feedLimit ?? 50;
    this.resolution = options.resolution ?? "5m";
    this.traceLink = options.traceLink;

    const traceEl = (panel: string) => h("small", { class: "trace", "data-testid": `trace-${panel}`, title: "X-Ray trace id" }, "trace: -");
    this.traceEls = { tickers: traceEl("tickers"), feed: traceEl("feed"), alerts: traceEl("alerts") };

    this.stateEl = h("span", { class: "pill", "data-testid": "connection-state", "data-state": "connecting", role: "status" }, "connecting");
    this.statsEl = h("span", { class: "stream-stats", "data-testid": "stream-stats" });
    this.refreshButton = h("button", { type: "button", "data-testid": "refresh", class: "button" }, "Refresh");
    this.refreshButton.addEventListener("click", () => void this.refresh());
    this.resolutionSelect = h(
      "select",
      { "data-testid": "resolution", "aria-label": "Chart resolution" },
      ...RESOLUTIONS.map((r) => h("option", { value: r }, r)),
    );
    this.resolutionSelect.value = this.resolution;
    this.resolutionSelect.addEventListener("change", () => {
      this.resolution = this.resolutionSelect.value as Resolution;
      void this.reloadSeries();
    });
    this.bannerEl = h("div", { class: "banner", "data-testid": "error-banner", role: "alert", hidden: "" });

    this.grid = h("div", { class: "ticker-grid", "data-testid": "ticker-list" });
    this.feedList = h("ol", { class: "feed", "data-testid": "live-feed", "aria-live": "polite" });
    this.feedEmpty = h("p", { class: "empty" }, "No scored headlines yet.");

    this.alertTicker = h("select", { name: "ticker", required: "", "data-testid": "alert-ticker", "aria-label": "Ticker" });
    const direction = h(
      "select",
      { name: "direction", "data-testid": "alert-direction", "aria-label": "Direction" },
      h("option", { value: "above" }, "above"),
      h("option", { value: "below" }, "below"),
    );
    const threshold = h("input", {
      name: "threshold",
      type: "number",
      min: "-1",
      max: "1",
      step: "0.05",
      value: "0.5",
      required: "",
      "data-testid": "alert-threshold",
      "aria-label": "Threshold",
    });
    this.alertForm = h(
      "form",
      { class: "alert-form", "data-testid": "alert-form" },
      this.alertTicker,
      direction,
      threshold,
      h("button", { type: "submit", class: "button", "data-testid": "alert-submit" }, "Add rule"),
    );
    this.alertForm.noValidate = true;
    this.alertForm.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.submitAlert();
    });
    this.alertForm.hidden = true; // until signed in: rules belong to a user
    this.alertError = h("p", { class: "form-error", "data-testid": "alert-error", hidden: "" });
    this.signInFn = options.signIn;
    this.signInForm = h(
      "form",
      { class: "sign-in-form", "data-testid": "sign-in-form" },
      h("input", { name: "username", type: "email", placeholder: "you@example.com", autocomplete: "username",
                   "data-testid": "sign-in-username", "aria-label": "Email" }),
      h("input", { name: "password", type: "password", placeholder: "Password", autocomplete: "current-password",
                   "data-testid": "sign-in-password", "aria-label": "Password" }),
      h("button", { type: "submit", class: "button", "data-testid": "sign-in-submit" }, "Sign in"),
    );
    this.signInForm.hidden = !this.signInFn;
    this.signInForm.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.submitSignIn();
    });
    this.signedInEl = h("p", { class: "signed-in", "data-testid": "signed-in-as", hidden: "" });
    this.alertList = h("ul", { class: "alerts", "data-testid": "alert-list" });
    this.sessionEl = h("span", { "data-testid": "session-id" });

    this.root.replaceChildren(
      h(
        "header",
        { class: "topbar" },
        h("h1", {}, "Sentiment analyzer"),
        h("div", { class: "topbar-status" }, this.stateEl, this.statsEl, this.refreshButton),
      ),
      this.bannerEl,
      h(
        "main",
        { class: "layout" },
        h(
          "section",
          { class: "panel tickers-panel", "aria-labelledby": "tickers-title" },
          h("div", { class: "panel-head" }, h("h2", { id: "tickers-title" }, "Tickers"), this.resolutionSelect, this.traceEls.tickers),
          this.grid,
        ),
        h(
          "div",
          { class: "side" },
          h(
            "section",
            { class: "panel feed-panel", "aria-labelledby": "feed-title" },
            h("div", { class: "panel-head" }, h("h2", { id: "feed-title" }, "Live feed"), this.traceEls.feed),
            this.feedEmpty,
            this.feedList,
          ),
          h(
            "section",
            { class: "panel alerts-panel", "aria-labelledby": "alerts-title" },
            h("div", { class: "panel-head" }, h("h2", { id: "alerts-title" }, "Alert rules"), this.traceEls.alerts),
            this.signInForm,
            this.signedInEl,
            this.alertForm,
            this.alertError,
            this.alertList,
          ),
        ),
      ),
      h("footer", { class: "footer" }, "SSE session ", this.sessionEl),
    );

    this.stream = options.createStream({
      onMessage: (message) => this.onMessage(message),
      onState: (state) => this.onState(state),
      onConnection: (info) => this.onConnection(info),
    });
    this.sessionEl.textContent = this.stream.sessionId;
    this.renderFeed();
    this.renderAlerts();
  }

  /** Load everything (one action), then open the live stream. */
  async start(): Promise<void> {
    this.ticking = setInterval(() => this.tick(), 1000);
    void this.stream.start();
    await this.load();
  }

  stop(): void {
    this.stream.stop();
    if (this.ticking !== null) clearInterval(this.ticking);
    this.ticking = null;
    for (const handle of this.pendingRefresh.values()) clearTimeout(handle);
    this.pendingRefresh.clear();
    for (const card of this.cards.values()) card.chart?.destroy();
  }

  /** The refresh button: reload every panel under a fresh trace; hurry a pending reconnect. */
  async refresh(): Promise<void> {
    if (this.connection.status === "reconnecting") this.stream.reconnectNow();
    await this.load();
  }

  // ---- loading -------------------------------------------------------------------------------

  private async load(): Promise<void> {
    const action = this.api.action();
    this.refreshButton.disabled = true;
    try {
      const tickers = await this.api.tickers(action);
      this.tickers = tickers.data.tickers;
      this.showTrace("tickers", tickers.trace);
      this.renderTickerOptions();
      await Promise.all([this.loadTickers(action), this.loadAlerts(action), this.loadHistory(action)]);
      this.hideBanner();
    } catch (error) {
      this.showError(error);
    } finally {
      this.refreshButton.disabled = false;
    }
  }

  private async loadTickers(action: TraceContext): Promise<void> {
    const symbols = this.tickers.map((t) => t.ticker);
    for (const symbol of [...this.cards.keys()]) {
      if (!symbols.includes(symbol)) {
        this.cards.get(symbol)?.chart?.destroy();
        this.cards.get(symbol)?.element.remove();
        this.cards.delete(symbol);
      }
    }
    for (const ticker of this.tickers) this.ensureCard(ticker);
    if (symbols.length === 0) {
      this.grid.replaceChildren(h("p", { class: "empty" }, "No tracked tickers."));
      return;
    }
    const sentiment = await this.api.sentiment(symbols, action);
    this.showTrace("tickers", sentiment.trace);
    for (const symbol of symbols) {
      const card = this.cards.get(symbol);
      if (card) this.applySentiment(card, sentiment.data.sentiment[symbol] ?? { latest: null, counts: EMPTY_COUNTS });
    }
    await Promise.all(symbols.map((symbol) => this.loadSeries(symbol, action)));
  }

  private async loadSeries(symbol: string, action: TraceContext): Promise<void> {
    const result = await this.api.timeseries(symbol, this.resolution, action);
    const card = this.cards.get(symbol);
    if (!card) return;
    card.buckets = result.data.buckets;
    this.drawChart(card);
  }

  private async reloadSeries(): Promise<void> {
    const action = this.api.action();
    try {
      await Promise.all([...this.cards.keys()].map((symbol) => this.loadSeries(symbol, action)));
      this.hideBanner();
    } catch (error) {
      this.showError(error);
    }
  }

  /** Refresh one ticker after live updates: server truth replaces the local increments. */
  private async refreshTicker(symbol: string): Promise<void> {
    const action = this.api.action();
    try {
      const sentiment = await this.api.sentiment([symbol], action);
      this.showTrace("tickers", sentiment.trace);
      const card = this.cards.get(symbol);
      const value = sentiment.data.sentiment[symbol];
      if (card && value) this.applySentiment(card, value);
      await this.loadSeries(symbol, action);
    } catch (error) {
      this.showError(error);
    }
  }

  private async loadHistory(action: TraceContext): Promise<void> {
    const pages = await Promise.all(this.tickers.map((t) => this.api.items(t.ticker, { limit: 10, trace: action })));
    const history: FeedEntry[] = [];
    for (const page of pages) {
      for (const item of page.data.items) {
        if (!item.sentiment) continue;
        history.push({
          item_id: item.item_id,
          ticker: item.ticker,
          headline: item.headline,
          label: item.sentiment.label,
          score: item.sentiment.score,
          at: item.published_at,
          url: item.url,
          traceId: item.sentiment.trace_id ?? null,
          source: "history",
        });
      }
    }
    const live = this.feed.filter((entry) => entry.source === "live");
    const seen = new Set(live.map((entry) => entry.item_id));
    const merged = [...live, ...history.filter((entry) => !seen.has(entry.item_id))];
    merged.sort((a, b) => (a.source === b.source ? b.at.localeCompare(a.at) : a.source === "live" ? -1 : 1));
    this.feed = merged.slice(0, this.feedLimit);
    this.renderFeed();
  }

  private async loadAlerts(action: TraceContext): Promise<void> {
    if (!this.api.idToken) {
      this.alerts = [];
      this.renderAlerts();
      return;
    }
    const result = await this.api.alerts(action);
    this.alerts = result.data.alerts;
    this.showTrace("alerts", result.trace);
    this.renderAlerts();
  }

  // ---- sign-in -------------------------------------------------------------------------------

  private async submitSignIn(): Promise<void> {
    if (!this.signInFn) return;
    const data = new FormData(this.signInForm);
    const username = String(data.get("username") ?? "").trim();
    const password = String(data.get("password") ?? "");
    if (!username || !password) {
      this.showAlertError("Enter your email address and password.");
      return;
    }
    try {
      const session = await this.signInFn(username, password);
      this.api.idToken = session.idToken;
      this.signInForm.reset();
      this.signInForm.hidden = true;
      this.signedInEl.hidden = false;
      this.signedInEl.textContent = `Signed in as ${session.username}`;
      this.alertForm.hidden = false;
      this.hideAlertError();
      await this.loadAlerts(this.api.action());
    } catch (error) {
      this.showAlertError(error);
    }
  }

  // ---- alerts --------------------------------------------------------------------------------

  private async submitAlert(): Promise<void> {
    const data = new FormData(this.alertForm);
    const ticker = String(data.get("ticker") ?? "").trim();
    const direction = String(data.get("direction") ?? "above") as AlertDirection;
    const thresholdText = String(data.get("threshold") ?? "").trim();
    const threshold = Number(thresholdText);

    const problem = !ticker
      ? "Pick a ticker."
      : direction !== "above" && direction !== "below"
        ? "Direction must be above or below."
        : thresholdText === "" || !Number.isFinite(threshold) || threshold < -1 || threshold > 1
          ? "Threshold must be a number between -1 and 1."
          : null;
    if (problem) {
      this.showAlertError(problem);
      return;
    }
    const action = this.api.action();
    const submit = this.alertForm.querySelector("button[type=submit]") as HTMLButtonElement | null;
    if (submit) submit.disabled = true;
    try {
      const created = await this.api.createAlert({ ticker, direction, threshold }, action);
      this.showTrace("alerts", created.trace);
      this.alerts = [...this.alerts.filter((a) => a.alert_id !== created.data.alert_id), created.data];
      this.renderAlerts();
      this.hideAlertError();
      this.alertForm.reset();
      this.alertTicker.value = ticker;
    } catch (error) {
      this.showAlertError(error);
    } finally {
      if (submit) submit.disabled = false;
    }
  }

  private async deleteAlert(alertId: string): Promise<void> {
    const action = this.api.action();
    try {
      const result = await this.api.deleteAlert(alertId, action);
      this.showTrace("alerts", result.trace);
      this.alerts = this.alerts.filter((a) => a.alert_id !== alertId);
      this.renderAlerts();
      this.hideAlertError();
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        // Already gone: the list was stale.
        this.alerts = this.alerts.filter((a) => a.alert_id !== alertId);
        this.renderAlerts();
      }
      this.showAlertError(error);
    }
  }

  // ---- stream --------------------------------------------------------------------------------

  private onState(state: ConnectionState): void {
    this.connection = state;
    this.renderConnection();
  }

  private onConnection(info: ConnectionInfo): void {
    const sent = info.requestHeaders["X-Amzn-Trace-Id"] ?? "";
    const root = /Root=([^;]+)/.exec(sent)?.[1] ?? "-";
    const id = info.responseTraceId ?? root;
    this.setTrace(this.traceEls.feed, id);
    this.traceEls.feed.title = `SSE connection #${info.sequence}${info.resumeSupported ? "" : " (server cannot resume)"}`;
  }

  private onMessage(message: SseMessage): void {
    const event = parseStreamEvent(message);
    if (!event) return;
    switch (event.type) {
      case "sentiment_update":
        this.onUpdate(event.update);
        break;
      case "metrics": {
        // What this connection delivered (the server counts per stream; each stream lives a bounded time).
        const total = Object.values(event.metrics.counts).reduce((sum, count) => sum + count, 0);
        this.statsEl.dataset.updates = String(total);
        this.statsEl.textContent = `${total} live update${total === 1 ? "" : "s"}`;
        break;
      }
      case "heartbeat":
        this.statsEl.title = `last heartbeat ${clockTime(event.ts)}`;
        this.statsEl.dataset.heartbeat = event.ts;
        break;
      case "reconnect": // the SSE client reconnects at once by itself (FR-090)
        break;
    }
  }

  private onUpdate(update: SentimentUpdate): void {
    const existing = this.feed.find((entry) => entry.item_id === update.item_id);
    this.feed = [
      {
        item_id: update.item_id,
        ticker: update.ticker,
        headline: update.headline,
        label: update.label,
        score: update.score,
        at: update.analyzed_at || update.published_at,
        url: existing?.url,
        traceId: update.trace_id ?? existing?.traceId ?? null,
        source: "live" as const,
      },
      ...this.feed.filter((entry) => entry.item_id !== update.item_id),
    ].slice(0, this.feedLimit);
    this.renderFeed();

    const card = this.cards.get(update.ticker);
    if (!card) return;
    const counts = { ...card.sentiment.counts };
    if (!existing) counts[update.label] += 1;
    this.applySentiment(card, {
      latest: { label: update.label, score: update.score, analyzed_at: update.analyzed_at },
      counts,
    });
    card.element.classList.remove("flash");
    void card.element.offsetWidth; // restart the highlight animation
    card.element.classList.add("flash");
    this.scheduleRefresh(update.ticker);
  }

  private scheduleRefresh(symbol: string): void {
    const pending = this.pendingRefresh.get(symbol);
    if (pending !== undefined) clearTimeout(pending);
    this.pendingRefresh.set(
      symbol,
      setTimeout(() => {
        this.pendingRefresh.delete(symbol);
        void this.refreshTicker(symbol);
      }, this.debounceMs),
    );
  }

  // ---- rendering -----------------------------------------------------------------------------

  private tick(): void {
    if (this.connection.status === "reconnecting") this.renderConnection();
    for (const card of this.cards.values()) this.renderWhen(card);
  }

  private renderConnection(): void {
    const { state, text } = connectionLabel(this.connection, this.now());
    this.stateEl.dataset.state = state;
    this.stateEl.className = `pill ${state}`;
    this.stateEl.textContent = text;
    const detail =
      this.connection.status === "reconnecting" || this.connection.status === "offline" ? this.connection.detail : "";
    this.stateEl.title = detail;
  }

  private ensureCard(ticker: Ticker): Card {
    const existing = this.cards.get(ticker.ticker);
    if (existing) return existing;
    const label = h("span", { class: "label none", "data-testid": "ticker-label" }, "no data");
    const score = h("span", { class: "score", "data-testid": "ticker-score" }, "");
    const when = h("time", { class: "when", "data-testid": "ticker-updated" });
    const counts = h("div", { class: "counts", "data-testid": "ticker-counts" });
    const bar = h("div", { class: "count-bar", "aria-hidden": "true" });
    const chartBox = h("div", { class: "chart", "data-testid": "ticker-chart" });
    const element = h(
      "article",
      { class: "card", "data-testid": `ticker-card-${ticker.ticker}`, "data-ticker": ticker.ticker },
      h("header", { class: "card-head" }, h("strong", { class: "symbol" }, ticker.ticker), h("span", { class: "name" }, ticker.name)),
      h("div", { class: "latest" }, label, score, when),
      counts,
      bar,
      chartBox,
    );
    if (this.grid.querySelector(".empty")) this.grid.replaceChildren();
    this.grid.append(element);
    const card: Card = {
      element,
      label,
      score,
      when,
      counts,
      bar,
      chartBox,
      chart: null,
      sentiment: { latest: null, counts: { ...EMPTY_COUNTS } },
      buckets: [],
    };
    this.cards.set(ticker.ticker, card);
    return card;
  }

  private applySentiment(card: Card, sentiment: TickerSentiment): void {
    card.sentiment = { latest: sentiment.latest, counts: { ...EMPTY_COUNTS, ...sentiment.counts } };
    const latest = sentiment.latest;
    card.label.textContent = latest ? latest.label : "no data";
    card.label.className = `label ${latest ? latest.label : "none"}`;
    card.score.textContent = latest ? formatScore(latest.score) : "";
    card.element.dataset.label = latest?.label ?? "";
    this.renderWhen(card);
    const { positive, neutral, negative } = card.sentiment.counts;
    card.counts.replaceChildren(
      h("span", { class: "count positive", "data-testid": "count-positive", title: "positive" }, `▲ ${positive}`),
      h("span", { class: "count neutral", "data-testid": "count-neutral", title: "neutral" }, `● ${neutral}`),
      h("span", { class: "count negative", "data-testid": "count-negative", title: "negative" }, `▼ ${negative}`),
    );
    const total = positive + neutral + negative;
    card.bar.replaceChildren(
      ...(["positive", "neutral", "negative"] as const).map((key) => {
        const segment = h("span", { class: key });
        segment.style.width = total ? `${(100 * card.sentiment.counts[key]) / total}%` : "0%";
        return segment;
      }),
    );
  }

  private renderWhen(card: Card): void {
    const at = card.sentiment.latest?.analyzed_at;
    card.when.textContent = at ? timeAgo(at, this.now()) : "";
    if (at) card.when.setAttribute("datetime", at);
  }

  private drawChart(card: Card): void {
    if (!this.chartFactory) return;
    if (card.buckets.length === 0) {
      card.chart?.destroy();
      card.chart = null;
      card.chartBox.replaceChildren(h("p", { class: "empty" }, `No ${this.resolution} buckets yet.`));
      return;
    }
    if (card.chart) {
      card.chart.update(card.buckets);
    } else {
      card.chartBox.replaceChildren();
      card.chart = this.chartFactory(card.chartBox, card.buckets);
    }
  }

  private renderFeed(): void {
    this.feedEmpty.hidden = this.feed.length > 0;
    this.feedList.replaceChildren(
      ...this.feed.map((entry) => {
        const headline = entry.url
          ? h("a", { href: entry.url, target: "_blank", rel: "noopener noreferrer", class: "headline" }, entry.headline)
          : h("span", { class: "headline" }, entry.headline);
        return h(
          "li",
          {
            class: `feed-item ${entry.source}`,
            "data-testid": "feed-item",
            "data-item-id": entry.item_id,
            "data-ticker": entry.ticker,
            "data-source": entry.source,
          },
          h("span", { class: "symbol" }, entry.ticker),
          h("span", { class: `label ${entry.label ?? "none"}` }, entry.label ?? "pending"),
          h("span", { class: "score" }, entry.score === null ? "" : formatScore(entry.score)),
          headline,
          h("time", { class: "when", datetime: entry.at }, clockTime(entry.at)),
          entry.traceId ? this.traceAnchor(entry.traceId, "feed-item-trace") : null,
        );
      }),
    );
  }

  private renderTickerOptions(): void {
    const current = this.alertTicker.value;
    this.alertTicker.replaceChildren(
      h("option", { value: "" }, "Ticker"),
      ...this.tickers.map((t) => h("option", { value: t.ticker }, `${t.ticker} (${t.name})`)),
    );
    if (this.tickers.some((t) => t.ticker === current)) this.alertTicker.value = current;
  }

  private renderAlerts(): void {
    if (this.alerts.length === 0) {
      const text = this.api.idToken ? "No alert rules." : "Sign in to manage your alert rules.";
      this.alertList.replaceChildren(h("li", { class: "empty" }, text));
      return;
    }
    this.alertList.replaceChildren(
      ...this.alerts.map((alert) => {
        const remove = h("button", { type: "button", class: "link", "data-testid": "alert-delete", "aria-label": `Delete alert ${alert.alert_id}` }, "Delete");
        remove.addEventListener("click", () => void this.deleteAlert(alert.alert_id));
        return h(
          "li",
          { class: "alert-item", "data-testid": "alert-item", "data-alert-id": alert.alert_id },
          h("strong", { class: "symbol" }, alert.ticker),
          h("span", {}, ` ${alert.direction} ${formatScore(alert.threshold)} → `),
          h("span", { class: "email" }, alert.email),
          remove,
        );
      }),
    );
  }

  private showTrace(panel: "tickers" | "feed" | "alerts", trace: RequestTrace): void {
    this.setTrace(this.traceEls[panel], displayTraceId(trace));
  }

  /** "trace: <id>", the id a link to the trace (when the page knows where traces open). */
  private setTrace(element: HTMLElement, id: string): void {
    element.dataset.traceId = id;
    element.replaceChildren("trace: ", TRACE_ID_PATTERN.test(id) ? this.traceAnchor(id) : id);
  }

  private traceAnchor(id: string, testId?: string): HTMLElement {
    const attrs = { class: "trace-link", "data-testid": testId, "data-trace-id": id };
    if (!this.traceLink) return h("span", attrs, id);
    return h("a", { ...attrs, href: this.traceLink(id), target: "_blank", rel: "noopener noreferrer" }, id);
  }

  /** Show a problem the page found outside its panels (e.g. an unreadable config.json). */
  reportProblem(error: unknown): void {
    this.showError(error);
  }

  private showError(error: unknown): void {
    this.bannerEl.hidden = false;
    this.bannerEl.textContent = describeError(error);
  }

  private hideBanner(): void {
    this.bannerEl.hidden = true;
    this.bannerEl.textContent = "";
  }

  private showAlertError(error: unknown): void {
    this.alertError.hidden = false;
    this.alertError.textContent = typeof error === "string" ? error : describeError(error);
    if (error instanceof ApiError) this.showTrace("alerts", error.trace);
  }

  private hideAlertError(): void {
    this.alertError.hidden = true;
    this.alertError.textContent = "";
  }
}

function describeError(error: unknown): string {
  if (error instanceof ApiError) {
    const where = error.status === null ? "network error" : `HTTP ${error.status}`;
    return `${error.message} (${where}, trace ${displayTraceId(error.trace)})`;
  }
  return error instanceof Error ? error.message : String(error);
}
