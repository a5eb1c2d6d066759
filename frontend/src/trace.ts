/**
 * X-Ray trace headers made in the browser (FR-016, FR-035).
 *
 * The browser starts traces: `Root=1-<8 hex epoch seconds>-<24 hex random>;Parent=<16 hex>`.
 * It never sends a `Sampled` field: the sampling decision belongs to the server-side rules
 * (a client's `Sampled=1` would be a cost attack; the edge strips it anyway).
 */

/** Fills a byte array with random values (crypto.getRandomValues in the browser). */
export type RandomBytes = (length: number) => Uint8Array;

export interface TraceIdSource {
  /** Milliseconds since the epoch. */
  now: () => number;
  randomBytes: RandomBytes;
}

export const browserTraceIdSource: TraceIdSource = {
  now: () => Date.now(),
  randomBytes: (length) => crypto.getRandomValues(new Uint8Array(length)),
};

export const TRACE_HEADER = "X-Amzn-Trace-Id";
export const TRACE_ID_PATTERN = /^1-[0-9a-f]{8}-[0-9a-f]{24}$/;
export const TRACE_HEADER_PATTERN = /^Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16}$/;

function hex(bytes: Uint8Array): string {
  let out = "";
  for (const byte of bytes) out += byte.toString(16).padStart(2, "0");
  return out;
}

/** `1-<8 hex epoch seconds>-<24 hex random>`. */
export function newTraceId(source: TraceIdSource = browserTraceIdSource): string {
  const seconds = Math.floor(source.now() / 1000);
  const epoch = (seconds >>> 0).toString(16).padStart(8, "0");
  return `1-${epoch}-${hex(source.randomBytes(12))}`;
}

/** A 16-hex-character segment id for `Parent`. Never all zeros (X-Ray treats that as absent). */
export function newSegmentId(source: TraceIdSource = browserTraceIdSource): string {
  for (;;) {
    const id = hex(source.randomBytes(8));
    if (id !== "0000000000000000") return id;
  }
}

/**
 * One user action (a page load, a refresh, a form submit, one SSE connection): one trace root.
 * Each request made for the action gets its own `Parent`, so the requests are siblings in the
 * trace without claiming a sampling decision.
 */
export class TraceContext {
  readonly root: string;
  private readonly source: TraceIdSource;

  constructor(source: TraceIdSource = browserTraceIdSource, root?: string) {
    this.source = source;
    this.root = root ?? newTraceId(source);
  }

  /** The header value for one request of this action. */
  header(): string {
    return `Root=${this.root};Parent=${newSegmentId(this.source)}`;
  }
}

/**
 * The trace id (`1-...-...`) of a response's `x-amzn-trace-id` header.
 * Accepts `Root=1-...;Parent=...;Sampled=...` (what API Gateway answers) or a bare trace id.
 * Returns null for anything else: a malformed header is not a correlation id.
 */
export function traceIdFromHeader(value: string | null | undefined): string | null {
  if (!value) return null;
  const trimmed = value.trim();
  if (TRACE_ID_PATTERN.test(trimmed)) return trimmed;
  for (const part of trimmed.split(";")) {
    const [key, field] = part.split("=", 2).map((s) => s.trim());
    if (key === "Root" && field !== undefined && TRACE_ID_PATTERN.test(field)) return field;
  }
  return null;
}
