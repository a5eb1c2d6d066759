/** Typed views of the SSE frames (specs/contracts.md); anything malformed is dropped, not guessed. */
import type { SseMessage } from "./sse";
import { TRACE_ID_PATTERN } from "./trace";
import type { SentimentLabel, SentimentUpdate, StreamMetrics } from "./types";

export type StreamEvent =
  | { type: "sentiment_update"; id: string | undefined; update: SentimentUpdate }
  | { type: "metrics"; metrics: StreamMetrics }
  | { type: "heartbeat"; ts: string }
  | { type: "reconnect"; reason: string; reconnectAfterMs: number | null };

const LABELS: readonly SentimentLabel[] = ["positive", "neutral", "negative"];

function object(data: string): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(data);
    return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

const isString = (value: unknown): value is string => typeof value === "string";
const isNumber = (value: unknown): value is number => typeof value === "number" && Number.isFinite(value);

export function parseStreamEvent(message: SseMessage): StreamEvent | null {
  const data = object(message.data);
  if (!data) return null;
  switch (message.event) {
    case "sentiment_update": {
      const { item_id, ticker, headline, label, score, published_at, analyzed_at, trace_id } = data;
      if (!isString(item_id) || !isString(ticker) || !isString(headline) || !isNumber(score)) return null;
      if (!isString(label) || !LABELS.includes(label as SentimentLabel)) return null;
      const update: SentimentUpdate = {
        item_id,
        ticker,
        headline,
        label: label as SentimentLabel,
        score,
        published_at: isString(published_at) ? published_at : "",
        analyzed_at: isString(analyzed_at) ? analyzed_at : "",
        trace_id: isString(trace_id) && TRACE_ID_PATTERN.test(trace_id) ? trace_id : null,
      };
      return { type: "sentiment_update", id: message.id, update };
    }
    case "metrics": {
      const counts: Record<string, number> = {};
      if (data.counts && typeof data.counts === "object") {
        for (const [key, value] of Object.entries(data.counts as Record<string, unknown>)) {
          if (isNumber(value)) counts[key] = value;
        }
      }
      return { type: "metrics", metrics: { counts } };
    }
    case "heartbeat":
      return isString(data.ts) ? { type: "heartbeat", ts: data.ts } : null;
    case "reconnect":
      return {
        type: "reconnect",
        reason: isString(data.reason) ? data.reason : "",
        reconnectAfterMs: isNumber(data.reconnect_after_ms) ? data.reconnect_after_ms : null,
      };
    default:
      return null;
  }
}
