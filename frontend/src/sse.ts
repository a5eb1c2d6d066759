/**
 * Server-Sent Events over `fetch()` + `ReadableStream` (FR-032): unlike `EventSource`, it can send
 * headers, so every connection is traced and correlated with the ones before it (FR-048).
 *
 * One loop, one connection at a time:
 *
 *   connecting ──response 2xx──► live ──stream ends normally──► reconnecting (server `retry:`)
 *       │                          └──network error / idle────► reconnecting (backoff + jitter)
 *       ├──network error───────────────────────────────────────► reconnecting (backoff + jitter)
 *       ├──503/429/5xx with Retry-After────────────────────────► reconnecting (Retry-After)
 *       ├──5xx/429/408 without it──────────────────────────────► reconnecting (backoff + jitter)
 *       └──204, other 4xx──────────────────────────────────────► offline (fatal: retrying won't help)
 *   stop() / abort signal, in any state ───────────────────────► offline (stopped)
 *
 * Every stream ends itself after a bounded lifetime (FR-090: Lambda never tells the function that
 * its client left, so the server bounds what an abandoned stream costs). Its last event is
 * `reconnect` (`reconnect_after_ms: 0`, and `retry: 0`): the client reconnects at once with
 * `Last-Event-ID` = that event's id, and the server resumes after it, so nothing is lost or
 * repeated. Any other graceful close waits the server's `retry:` value (FR-089), a network error
 * waits an exponential backoff with jitter (FR-033, FR-083). Each connection sends a NEW `X-Amzn-Trace-Id` root, the stable
 * `X-SSE-Session-Id`, `X-SSE-Connection-Sequence` (1, 2, ...), `Last-Event-ID` once an event id
 * was received, and from the second connection on `X-SSE-Previous-Trace-Id`: the trace id read
 * from the most recent response's `x-amzn-trace-id`.
 */
import { createParser } from "eventsource-parser";
import { TRACE_HEADER, TraceContext, browserTraceIdSource, traceIdFromHeader } from "./trace";
import type { TraceIdSource } from "./trace";
import type { FetchLike } from "./api";

export interface Clock {
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => globalThis.setTimeout(callback, ms),
  clearTimeout: (handle) => globalThis.clearTimeout(handle as ReturnType<typeof globalThis.setTimeout>),
};

export interface BackoffPolicy {
  /** Ceiling of the first retry after a failure. */
  initialDelayMs: number;
  /** The ceiling never grows beyond this. */
  maxDelayMs: number;
  multiplier: number;
  /** Fraction of the ceiling taken off at random: the delay lies in [ceiling*(1-jitter), ceiling]. */
  jitter: number;
  /** Delay after a graceful close when the server never sent `retry:`. */
  gracefulDelayMs: number;
  /** Upper bound for a server's Retry-After (a broken proxy must not park the tab for a day). */
  maxRetryAfterMs: number;
}

export const DEFAULT_POLICY: BackoffPolicy = {
  initialDelayMs: 1_000,
  maxDelayMs: 30_000,
  multiplier: 2,
  jitter: 0.5,
  gracefulDelayMs: 1_000,
  maxRetryAfterMs: 300_000,
};

/** How one connection ended. `announced`: the server's final `reconnect` event came first. */
export type ConnectionOutcome =
  | { kind: "graceful"; retryMs: number | null; announced?: boolean }
  | { kind: "network"; error: string }
  | { kind: "protocol"; error: string }
  | { kind: "http"; status: number; retryAfterMs: number | null }
  | { kind: "fatal"; status: number; error: string }
  | { kind: "stopped" };

export type RetryReason = "graceful" | "network" | "protocol" | "http";

export type ConnectionState =
  | { status: "idle" }
  | { status: "connecting"; sequence: number }
  | { status: "live"; sequence: number; traceId: string | null; since: number }
  | {
      status: "reconnecting";
      reason: RetryReason;
      /** HTTP status for reason "http". */
      httpStatus: number | null;
      delayMs: number;
      /** Clock time of the next attempt. */
      retryAt: number;
      /** Consecutive failed connections (0 after a graceful close). */
      failures: number;
      detail: string;
    }
  | { status: "offline"; reason: "stopped" | "fatal"; detail: string };

export type ConnectionStatus = ConnectionState["status"];

export interface SseMessage {
  /** Event type; "message" when the frame named none. */
  event: string;
  data: string;
  id: string | undefined;
}

/** What one connection attempt sent and got back (for the UI and for tests). */
export interface ConnectionInfo {
  sequence: number;
  requestHeaders: Record<string, string>;
  status: number | null;
  responseTraceId: string | null;
  /** False when the server answered `X-SSE-Resume-Supported: false` (FR-081). */
  resumeSupported: boolean;
}

export interface SseClientOptions {
  url: string;
  fetch?: FetchLike;
  clock?: Clock;
  /** Uniform in [0, 1). */
  random?: () => number;
  ids?: TraceIdSource;
  /** Stable per tab (FR-048); a new random UUID when omitted. */
  sessionId?: string;
  /** Extra request headers, e.g. `X-Auth-Token: <token>` for a per-alert stream (OAC's signature takes Authorization). */
  headers?: Record<string, string>;
  policy?: Partial<BackoffPolicy>;
  /** Reconnect (as a network error) when no byte arrived for this long; 0 disables. */
  idleTimeoutMs?: number;
  /** Resume point, e.g. kept from an earlier client. */
  lastEventId?: string;
  signal?: AbortSignal;
  onMessage?: (message: SseMessage) => void;
  onState?: (state: ConnectionState) => void;
  onConnection?: (info: ConnectionInfo) => void;
}

/** Ceiling of the backoff after `failures` consecutive failures (1-based). */
export function backoffCeiling(failures: number, policy: BackoffPolicy = DEFAULT_POLICY): number {
  const exponent = Math.max(0, failures - 1);
  return Math.min(policy.maxDelayMs, policy.initialDelayMs * policy.multiplier ** exponent);
}

/** Exponential backoff with jitter: in [ceiling*(1-jitter), ceiling]. */
export function backoffDelay(
  failures: number,
  random: () => number,
  policy: BackoffPolicy = DEFAULT_POLICY,
): number {
  const ceiling = backoffCeiling(failures, policy);
  const r = Math.min(Math.max(random(), 0), 1);
  return Math.round(ceiling * (1 - policy.jitter * r));
}

/** The wait before the next connection, by how the last one ended (FR-083). */
export function reconnectDelay(
  outcome: ConnectionOutcome,
  failures: number,
  random: () => number,
  policy: BackoffPolicy = DEFAULT_POLICY,
): number {
  switch (outcome.kind) {
    case "graceful":
      return Math.max(0, outcome.retryMs ?? policy.gracefulDelayMs);
    case "http":
      if (outcome.retryAfterMs !== null) return Math.min(Math.max(0, outcome.retryAfterMs), policy.maxRetryAfterMs);
      return backoffDelay(failures, random, policy);
    case "network":
    case "protocol":
      return backoffDelay(failures, random, policy);
    case "fatal":
    case "stopped":
      return 0;
  }
}

/** `Retry-After`: delay-seconds or an HTTP-date, in milliseconds; null when absent or unreadable. */
export function parseRetryAfter(value: string | null, now: number): number | null {
  if (value === null) return null;
  const text = value.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  const date = Date.parse(text);
  if (Number.isNaN(date) || !/[a-z]/i.test(text)) return null;
  return Math.max(0, date - now);
}

/**
 * A random UUID v4. `crypto.randomUUID` exists only in secure contexts (https, localhost);
 * `getRandomValues` works everywhere, so build it from that when needed.
 */
export function randomSessionId(): string {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6]! & 0x0f) | 0x40;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function isRetryableStatus(status: number): boolean {
  return status >= 500 || status === 429 || status === 408;
}

export class SseClient {
  private readonly url: string;
  private readonly fetchImpl: FetchLike;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly ids: TraceIdSource;
  private readonly extraHeaders: Record<string, string>;
  private readonly policy: BackoffPolicy;
  private readonly idleTimeoutMs: number;
  private readonly options: SseClientOptions;

  readonly sessionId: string;
  private currentState: ConnectionState = { status: "idle" };
  private stopped = false;
  private running: Promise<void> | null = null;
  private connection: AbortController | null = null;
  private wake: (() => void) | null = null;
  private sequenceCounter = 0;
  private failureCount = 0;
  private lastId: string | undefined;
  private retryMs: number | null = null;
  private previousTraceId: string | null = null;
  private lastInfo: ConnectionInfo | null = null;

  constructor(options: SseClientOptions) {
    this.options = options;
    this.url = options.url;
    this.fetchImpl = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? Math.random;
    this.ids = options.ids ?? browserTraceIdSource;
    this.extraHeaders = { ...(options.headers ?? {}) };
    this.policy = { ...DEFAULT_POLICY, ...(options.policy ?? {}) };
    this.idleTimeoutMs = options.idleTimeoutMs ?? 0;
    this.sessionId = options.sessionId ?? randomSessionId();
    this.lastId = options.lastEventId || undefined;
    options.signal?.addEventListener("abort", () => this.stop(), { once: true });
  }

  get state(): ConnectionState {
    return this.currentState;
  }

  /** Id of the last event received (sent as `Last-Event-ID`). */
  get lastEventId(): string | undefined {
    return this.lastId;
  }

  /** The server's `retry:` value in ms, once received. */
  get serverRetryMs(): number | null {
    return this.retryMs;
  }

  /** Connections attempted so far (the last `X-SSE-Connection-Sequence` sent). */
  get sequence(): number {
    return this.sequenceCounter;
  }

  /** Trace id of the most recent response (the next `X-SSE-Previous-Trace-Id`). */
  get lastResponseTraceId(): string | null {
    return this.previousTraceId;
  }

  get lastConnection(): ConnectionInfo | null {
    return this.lastInfo;
  }

  /** Start the loop; resolves when the client goes offline (stopped or fatal). */
  start(): Promise<void> {
    if (this.options.signal?.aborted) {
      this.stopped = true;
      this.setState({ status: "offline", reason: "stopped", detail: "aborted before start" });
      return Promise.resolve();
    }
    if (this.running) {
      // Restarted right after stop(): let the old loop finish, then run again.
      return this.stopped ? this.running.then(() => this.start()) : this.running;
    }
    this.stopped = false;
    this.running = this.loop().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  /** Abort the current connection or wait; no reconnect after this. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.connection?.abort();
    this.wake?.();
    this.setState({ status: "offline", reason: "stopped", detail: "stopped" });
  }

  /** Cut a pending reconnect wait short (e.g. the browser came back online, or the user asked). */
  reconnectNow(): void {
    this.wake?.();
  }

  private setState(state: ConnectionState): void {
    this.currentState = state;
    this.options.onState?.(state);
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      const outcome = await this.connectOnce();
      if (outcome.kind === "stopped" || this.stopped) break;
      if (outcome.kind === "fatal") {
        this.setState({ status: "offline", reason: "fatal", detail: outcome.error });
        return;
      }
      if (outcome.kind === "graceful") this.failureCount = 0;
      else this.failureCount += 1;
      const delayMs = reconnectDelay(outcome, this.failureCount, this.random, this.policy);
      this.setState({
        status: "reconnecting",
        reason: outcome.kind,
        httpStatus: outcome.kind === "http" ? outcome.status : null,
        delayMs,
        retryAt: this.clock.now() + delayMs,
        failures: this.failureCount,
        detail: describe(outcome),
      });
      await this.sleep(delayMs);
    }
    if (this.currentState.status !== "offline") {
      this.setState({ status: "offline", reason: "stopped", detail: "stopped" });
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      let handle: unknown = null;
      const done = () => {
        if (handle !== null) this.clock.clearTimeout(handle);
        this.wake = null;
        resolve();
      };
      this.wake = done;
      handle = this.clock.setTimeout(done, ms);
    });
  }

  private requestHeaders(sequence: number): Record<string, string> {
    const headers: Record<string, string> = {
      Accept: "text/event-stream",
      ...this.extraHeaders,
      [TRACE_HEADER]: new TraceContext(this.ids).header(),
      "X-SSE-Session-Id": this.sessionId,
      "X-SSE-Connection-Sequence": String(sequence),
    };
    if (this.lastId) headers["Last-Event-ID"] = this.lastId;
    if (this.previousTraceId) headers["X-SSE-Previous-Trace-Id"] = this.previousTraceId;
    return headers;
  }

  private async connectOnce(): Promise<ConnectionOutcome> {
    const sequence = ++this.sequenceCounter;
    const controller = new AbortController();
    this.connection = controller;
    const headers = this.requestHeaders(sequence);
    this.setState({ status: "connecting", sequence });

    let response: Response;
    try {
      response = await this.fetchImpl(this.url, {
        method: "GET",
        headers,
        signal: controller.signal,
        cache: "no-store",
      });
    } catch (error) {
      if (this.stopped) return { kind: "stopped" };
      this.report({ sequence, requestHeaders: headers, status: null, responseTraceId: null, resumeSupported: true });
      return { kind: "network", error: errorText(error) };
    }

    const responseTraceId = traceIdFromHeader(response.headers.get("x-amzn-trace-id"));
    if (responseTraceId) this.previousTraceId = responseTraceId;
    const resumeSupported = response.headers.get("x-sse-resume-supported")?.trim().toLowerCase() !== "false";
    this.report({ sequence, requestHeaders: headers, status: response.status, responseTraceId, resumeSupported });

    if (this.stopped) {
      discard(response);
      return { kind: "stopped" };
    }
    if (response.status === 204) {
      discard(response);
      return { kind: "fatal", status: 204, error: "server asked not to reconnect (HTTP 204)" };
    }
    if (!response.ok) {
      discard(response);
      if (isRetryableStatus(response.status)) {
        const retryAfterMs = parseRetryAfter(response.headers.get("retry-after"), this.clock.now());
        return { kind: "http", status: response.status, retryAfterMs };
      }
      return { kind: "fatal", status: response.status, error: `HTTP ${response.status}` };
    }
    const contentType = response.headers.get("content-type") ?? "";
    if (!contentType.toLowerCase().startsWith("text/event-stream") || !response.body) {
      discard(response);
      return { kind: "protocol", error: `not an event stream (content-type "${contentType}")` };
    }

    this.setState({ status: "live", sequence, traceId: responseTraceId, since: this.clock.now() });
    return this.consume(response.body, controller);
  }

  private report(info: ConnectionInfo): void {
    this.lastInfo = info;
    this.options.onConnection?.(info);
  }

  private async consume(body: ReadableStream<Uint8Array>, controller: AbortController): Promise<ConnectionOutcome> {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let frames = 0;
    let announcedReconnectMs: number | null = null;
    let idle = false;
    let idleHandle: unknown = null;

    const sawFrame = () => {
      frames += 1;
      // The connection works: the next failure starts the backoff from the beginning.
      this.failureCount = 0;
    };
    const parser = createParser({
      onRetry: (ms) => {
        sawFrame();
        this.retryMs = ms;
      },
      onComment: () => sawFrame(),
      onEvent: (event) => {
        sawFrame();
        if (event.id !== undefined) this.lastId = event.id || undefined;
        const message: SseMessage = { event: event.event ?? "message", data: event.data, id: event.id };
        if (message.event === "reconnect") announcedReconnectMs = readReconnectAfter(message.data) ?? 0;
        this.deliver(message);
      },
    });

    const disarm = () => {
      if (idleHandle !== null) this.clock.clearTimeout(idleHandle);
      idleHandle = null;
    };
    const arm = () => {
      if (this.idleTimeoutMs <= 0) return;
      disarm();
      idleHandle = this.clock.setTimeout(() => {
        idle = true;
        controller.abort();
      }, this.idleTimeoutMs);
    };
    const cancel = () => {
      reader.cancel().catch(() => undefined);
    };
    controller.signal.addEventListener("abort", cancel, { once: true });

    let failure: unknown = null;
    arm();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        arm();
        parser.feed(decoder.decode(value, { stream: true }));
        if (this.stopped) break;
      }
    } catch (error) {
      failure = error;
    } finally {
      disarm();
      controller.signal.removeEventListener("abort", cancel);
    }

    if (this.stopped) return { kind: "stopped" };
    if (idle) return { kind: "network", error: `no data for ${this.idleTimeoutMs} ms` };
    if (failure !== null) return { kind: "network", error: errorText(failure) };
    parser.feed(decoder.decode());
    if (frames === 0) return { kind: "protocol", error: "stream ended before its first frame" };
    if (announcedReconnectMs !== null) {
      // FR-090: the server ended the stream on purpose and said when to come back (at once).
      return { kind: "graceful", retryMs: announcedReconnectMs, announced: true };
    }
    return { kind: "graceful", retryMs: this.retryMs };
  }

  private deliver(message: SseMessage): void {
    try {
      this.options.onMessage?.(message);
    } catch (error) {
      // A bad handler must not cost the connection.
      console.error("SSE message handler failed", error);
    }
  }
}

function readReconnectAfter(data: string): number | null {
  try {
    const value = (JSON.parse(data) as { reconnect_after_ms?: unknown }).reconnect_after_ms;
    return typeof value === "number" && Number.isFinite(value) && value >= 0 ? value : null;
  } catch {
    return null;
  }
}

function discard(response: Response): void {
  response.body?.cancel().catch(() => undefined);
}

function errorText(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}

function describe(outcome: ConnectionOutcome): string {
  switch (outcome.kind) {
    case "graceful":
      return outcome.announced ? "stream ended by the server: resuming" : "stream closed by the server";
    case "network":
    case "protocol":
      return outcome.error;
    case "http":
      return `HTTP ${outcome.status}`;
    case "fatal":
      return outcome.error;
    case "stopped":
      return "stopped";
  }
}
