/**
 * The dashboard's JSON API client (`/api/v2/...`, specs/contracts.md).
 *
 * FR-016: every request carries `X-Amzn-Trace-Id: Root=...;Parent=...` (never `Sampled`).
 * One user action = one trace root: pass the same `TraceContext` to every call made for the
 * action (see `ApiClient.action()`); a call made without one is an action of its own.
 * The response's `x-amzn-trace-id` (exposed by CORS, FR-082) is returned with each result and
 * kept as `lastTraceId`, so the UI can show which trace filled each panel.
 */
import { TRACE_HEADER, TraceContext, browserTraceIdSource, traceIdFromHeader } from "./trace";
import type { TraceIdSource } from "./trace";
import type {
  AlertRule,
  ItemsPage,
  NewAlertRule,
  Resolution,
  Ticker,
  TickerSentiment,
  Timeseries,
} from "./types";

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

export interface ApiClientOptions {
  /** Prefix for every path; "" (same origin, relative URLs) by default. */
  baseUrl?: string;
  fetch?: FetchLike;
  ids?: TraceIdSource;
  /** Called after every response (or network failure) with the trace it belongs to. */
  onTrace?: (trace: RequestTrace) => void;
}

export interface RequestTrace {
  method: string;
  path: string;
  /** The header this request sent. */
  requestHeader: string;
  /** Root of the action the request belongs to. */
  root: string;
  /** Trace id from the response's `x-amzn-trace-id`, null when absent or unreadable. */
  responseTraceId: string | null;
  status: number | null;
}

export interface ApiResult<T> {
  data: T;
  trace: RequestTrace;
}

/** A non-2xx answer (`{"error", "message"}`) or a network failure (status null). */
export class ApiError extends Error {
  readonly status: number | null;
  readonly code: string;
  readonly trace: RequestTrace;

  constructor(status: number | null, code: string, message: string, trace: RequestTrace) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.trace = trace;
  }
}

/** The trace id to show for a request: the server's answer, else the root we sent. */
export function displayTraceId(trace: RequestTrace): string {
  return trace.responseTraceId ?? trace.root;
}

export class ApiClient {
  private readonly baseUrl: string;
  private readonly fetchImpl: FetchLike;
  /** The signed-in user's Cognito ID token (null: signed out). */
  idToken: string | null = null;
  private readonly ids: TraceIdSource;
  private readonly onTrace: ((trace: RequestTrace) => void) | undefined;
  private last: RequestTrace | null = null;

  constructor(options: ApiClientOptions = {}) {
    this.baseUrl = (options.baseUrl ?? "").replace(/\/+$/, "");
    this.fetchImpl = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.ids = options.ids ?? browserTraceIdSource;
    this.onTrace = options.onTrace;
  }

  /** A fresh trace root for one user action. */
  action(): TraceContext {
    return new TraceContext(this.ids);
  }

  /** The response trace id of the most recent request (null before any, or when absent). */
  get lastTraceId(): string | null {
    return this.last?.responseTraceId ?? null;
  }

  get lastTrace(): RequestTrace | null {
    return this.last;
  }

  url(path: string): string {
    return `${this.baseUrl}${path}`;
  }

  async request<T>(
    method: string,
    path: string,
    options: { body?: unknown; trace?: TraceContext; signal?: AbortSignal } = {},
  ): Promise<ApiResult<T>> {
    const context = options.trace ?? this.action();
    const requestHeader = context.header();
    const headers: Record<string, string> = { Accept: "application/json", [TRACE_HEADER]: requestHeader };
    // The alert routes' Cognito authorizer reads the ID token from Authorization, as is.
    if (this.idToken && path.startsWith("/api/v2/alerts")) headers.Authorization = this.idToken;
    const init: RequestInit = { method, headers };
    if (options.body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(options.body);
    }
    if (options.signal) init.signal = options.signal;

    const trace: RequestTrace = {
      method,
      path,
      requestHeader,
      root: context.root,
      responseTraceId: null,
      status: null,
    };
    let response: Response;
    try {
      response = await this.fetchImpl(this.url(path), init);
    } catch (error) {
      this.record(trace);
      if ((error as { name?: unknown } | null)?.name === "AbortError") throw error;
      throw new ApiError(null, "network_error", `network error: ${String(error)}`, trace);
    }
    trace.status = response.status;
    trace.responseTraceId = traceIdFromHeader(response.headers.get("x-amzn-trace-id"));
    this.record(trace);

    if (!response.ok) {
      let code = `http_${response.status}`;
      let message = `${method} ${path} failed with HTTP ${response.status}`;
      const text = await response.text().catch(() => "");
      try {
        const body = JSON.parse(text) as { error?: unknown; message?: unknown };
        if (typeof body.error === "string") code = body.error;
        if (typeof body.message === "string") message = body.message;
      } catch {
        // Not JSON (a proxy's error page): keep the generic message.
      }
      throw new ApiError(response.status, code, message, trace);
    }
    if (response.status === 204) return { data: undefined as T, trace };
    return { data: (await response.json()) as T, trace };
  }

  private record(trace: RequestTrace): void {
    this.last = trace;
    this.onTrace?.(trace);
  }

  tickers(trace?: TraceContext): Promise<ApiResult<{ tickers: Ticker[] }>> {
    return this.request("GET", "/api/v2/tickers", { trace });
  }

  sentiment(
    tickers: readonly string[],
    trace?: TraceContext,
  ): Promise<ApiResult<{ sentiment: Record<string, TickerSentiment> }>> {
    const query = encodeURIComponent(tickers.join(","));
    return this.request("GET", `/api/v2/sentiment?tickers=${query}`, { trace });
  }

  items(
    ticker: string,
    options: { limit?: number; cursor?: string; trace?: TraceContext } = {},
  ): Promise<ApiResult<ItemsPage>> {
    const params = new URLSearchParams({ ticker, limit: String(options.limit ?? 20) });
    if (options.cursor) params.set("cursor", options.cursor);
    return this.request("GET", `/api/v2/items?${params.toString()}`, { trace: options.trace });
  }

  timeseries(ticker: string, resolution: Resolution, trace?: TraceContext): Promise<ApiResult<Timeseries>> {
    const path = `/api/v2/timeseries/${encodeURIComponent(ticker)}?resolution=${resolution}`;
    return this.request("GET", path, { trace });
  }

  health(trace?: TraceContext): Promise<ApiResult<{ status: string }>> {
    return this.request("GET", "/api/v2/health", { trace });
  }

  alerts(trace?: TraceContext): Promise<ApiResult<{ alerts: AlertRule[] }>> {
    return this.request("GET", "/api/v2/alerts", { trace });
  }

  createAlert(rule: NewAlertRule, trace?: TraceContext): Promise<ApiResult<AlertRule>> {
    return this.request("POST", "/api/v2/alerts", { body: rule, trace });
  }

  deleteAlert(alertId: string, trace?: TraceContext): Promise<ApiResult<void>> {
    return this.request("DELETE", `/api/v2/alerts/${encodeURIComponent(alertId)}`, { trace });
  }
}
