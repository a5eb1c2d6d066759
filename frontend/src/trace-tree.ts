/**
 * A trace's documents (segments, subsegments, OTel spans as the collector's awsxray exporter writes
 * them), laid out as the timeline the trace view draws: one row per document, depth-first from the
 * roots, children in start order, each row placed as a percentage of the whole trace.
 *
 * Example:
 *   const layout = layoutTrace("1-...", documents);
 *   layout.rows[0].name   // "sentiment-analyzer-local-ingestion"
 *   layout.rows[1].depth  // 1
 */

/** One X-Ray document, flattened (subsegments as documents of their own with `parent_id`). */
export interface TraceDocument {
  id: string;
  name: string;
  start_time: number;
  end_time?: number;
  parent_id?: string;
  origin?: string;
  namespace?: string;
  type?: string;
  in_progress?: boolean;
  fault?: boolean;
  error?: boolean;
  throttle?: boolean;
  annotations?: Record<string, string | number | boolean>;
  cause?: { exceptions?: { message?: string; type?: string }[] } | string;
  aws?: { xray?: { sdk?: string } };
}

/** segment: a service's own record; subsegment: work inside it; span: an OTel span (via the collector). */
export type RowKind = "segment" | "subsegment" | "span";

export interface TraceRow {
  id: string;
  parentId: string | null;
  depth: number;
  name: string;
  kind: RowKind;
  origin: string | null;
  namespace: string | null;
  durationMs: number;
  /** Start and width as percentages of the trace's span (0..100). */
  offsetPct: number;
  widthPct: number;
  fault: boolean;
  error: boolean;
  throttle: boolean;
  inProgress: boolean;
  annotations: Record<string, string | number | boolean>;
  /** The first exception message, when the document recorded one. */
  cause: string | null;
}

export interface TraceLayout {
  traceId: string;
  startTime: number;
  durationMs: number;
  rows: TraceRow[];
  /** Documents whose parent is in no document of the trace (drawn as roots). */
  orphans: number;
}

function kindOf(doc: TraceDocument, hasParent: boolean): RowKind {
  if ((doc.aws?.xray?.sdk ?? "").startsWith("opentelemetry")) return "span";
  return hasParent || doc.type === "subsegment" ? "subsegment" : "segment";
}

function causeOf(doc: TraceDocument): string | null {
  if (!doc.cause || typeof doc.cause === "string") return doc.cause ?? null;
  const first = doc.cause.exceptions?.[0];
  return first ? [first.type, first.message].filter(Boolean).join(": ") || null : null;
}

export function layoutTrace(traceId: string, documents: readonly TraceDocument[]): TraceLayout {
  const byId = new Map(documents.map((doc) => [doc.id, doc]));
  const children = new Map<string | null, TraceDocument[]>();
  let orphans = 0;
  for (const doc of documents) {
    const parent = doc.parent_id && byId.has(doc.parent_id) && doc.parent_id !== doc.id ? doc.parent_id : null;
    if (doc.parent_id && parent === null) orphans += 1;
    const list = children.get(parent) ?? [];
    list.push(doc);
    children.set(parent, list);
  }
  for (const list of children.values()) list.sort((a, b) => a.start_time - b.start_time || a.name.localeCompare(b.name));

  const endOf = (doc: TraceDocument) => doc.end_time ?? doc.start_time;
  const start = documents.length ? Math.min(...documents.map((d) => d.start_time)) : 0;
  const end = documents.length ? Math.max(...documents.map(endOf)) : 0;
  const span = end - start;
  const pct = (seconds: number) => (span > 0 ? (100 * seconds) / span : 0);

  const rows: TraceRow[] = [];
  const visit = (doc: TraceDocument, depth: number, parentId: string | null) => {
    rows.push({
      id: doc.id,
      parentId,
      depth,
      name: doc.name,
      kind: kindOf(doc, parentId !== null),
      origin: doc.origin ?? null,
      namespace: doc.namespace ?? null,
      durationMs: (endOf(doc) - doc.start_time) * 1000,
      offsetPct: pct(doc.start_time - start),
      widthPct: pct(endOf(doc) - doc.start_time),
      fault: Boolean(doc.fault),
      error: Boolean(doc.error),
      throttle: Boolean(doc.throttle),
      inProgress: Boolean(doc.in_progress),
      annotations: { ...(doc.annotations ?? {}) },
      cause: causeOf(doc),
    });
    for (const child of children.get(doc.id) ?? []) visit(child, depth + 1, doc.id);
  };
  for (const root of children.get(null) ?? []) visit(root, 0, null);
  return { traceId, startTime: start, durationMs: span * 1000, rows, orphans };
}

/** "1.2 s", "35.0 ms", "0.4 ms". */
export function formatDuration(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`;
}
