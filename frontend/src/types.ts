/** Shapes of the HTTP API and SSE frames (specs/contracts.md). */

export type SentimentLabel = "positive" | "neutral" | "negative";
export type Resolution = "1m" | "5m" | "1h" | "24h";
export const RESOLUTIONS: readonly Resolution[] = ["1m", "5m", "1h", "24h"];

export interface Ticker {
  ticker: string;
  name: string;
}

export interface SentimentCounts {
  positive: number;
  neutral: number;
  negative: number;
}

export interface LatestSentiment {
  score: number;
  label: SentimentLabel;
  analyzed_at: string;
}

export interface TickerSentiment {
  latest: LatestSentiment | null;
  counts: SentimentCounts;
}

export interface NewsItem {
  item_id: string;
  ticker: string;
  headline: string;
  summary?: string;
  source?: string;
  url?: string;
  published_at: string;
  status: "pending" | "analyzed";
  /** `trace_id`: the X-Ray trace the score was computed in (null on older items). */
  sentiment: { label: SentimentLabel; score: number; trace_id?: string | null } | null;
}

export interface ItemsPage {
  items: NewsItem[];
  next_cursor: string | null;
}

export interface TimeseriesBucket {
  bucket_start: string;
  count: number;
  avg_score: number;
  positive: number;
  neutral: number;
  negative: number;
}

export interface Timeseries {
  ticker: string;
  resolution: Resolution;
  buckets: TimeseriesBucket[];
}

export type AlertDirection = "above" | "below";

export interface AlertRule {
  alert_id: string;
  ticker: string;
  direction: AlertDirection;
  threshold: number;
  email: string;
}

/** The rule mails the signed-in user's verified address: the request names none. */
export interface NewAlertRule {
  ticker: string;
  direction: AlertDirection;
  threshold: number;
}

/** `sentiment_update` event data. */
export interface SentimentUpdate {
  item_id: string;
  ticker: string;
  headline: string;
  label: SentimentLabel;
  score: number;
  published_at: string;
  analyzed_at: string;
  /** The X-Ray trace the score was computed in; null when the server did not send one. */
  trace_id: string | null;
}

/** `metrics` event data: what this connection delivered so far, per label. */
export interface StreamMetrics {
  counts: Record<string, number>;
}
