import { describe, expect, it } from "vitest";
import { formatDuration, layoutTrace } from "../src/trace-tree";
import type { TraceDocument } from "../src/trace-tree";

const TRACE = "1-6925e2a0-0123456789abcdef01234567";
const T0 = 1_764_057_600; // seconds, as X-Ray documents carry them

/** A pipeline trace as BatchGetTraces returns it once flattened: ingestion → SNS → analysis → notification,
 * with an OTel span and a faulted subsegment, listed out of order (documents arrive from several processes). */
function pipeline(): TraceDocument[] {
  return [
    { id: "a2", parent_id: "a1", name: "sentiment-analyzer-local-analysis", origin: "AWS::Lambda::Function", start_time: T0 + 0.6, end_time: T0 + 0.9 },
    { id: "i1", name: "sentiment-analyzer-local-ingestion", origin: "AWS::Lambda", start_time: T0, end_time: T0 + 2 },
    { id: "i2", parent_id: "i1", name: "sentiment-analyzer-local-ingestion", origin: "AWS::Lambda::Function", start_time: T0 + 0.01, end_time: T0 + 1.99 },
    { id: "i3", parent_id: "i2", name: "## lambda_handler", namespace: "local", start_time: T0 + 0.02, end_time: T0 + 1.2, annotations: { new_items: 3 } },
    { id: "p1", parent_id: "i3", name: "downstream_sns_publish", namespace: "local", start_time: T0 + 0.4, end_time: T0 + 0.5, fault: true,
      cause: { exceptions: [{ type: "AuthorizationError", message: "denied" }] } },
    { id: "s0", parent_id: "i3", name: "sns", namespace: "aws", start_time: T0 + 0.45, end_time: T0 + 0.5, error: true },
    { id: "s1", parent_id: "s0", name: "sentiment-analyzer-local-news_items", origin: "AWS::SNS", start_time: T0 + 0.5, end_time: T0 + 0.5002 },
    { id: "a1", parent_id: "s1", name: "sentiment-analyzer-local-analysis", origin: "AWS::Lambda", start_time: T0 + 0.55, end_time: T0 + 1.0 },
    { id: "n1", parent_id: "a2", name: "sentiment-analyzer-local-notification", origin: "AWS::Lambda", start_time: T0 + 0.8, end_time: T0 + 1.1 },
    { id: "o1", parent_id: "i2", name: "sse.poll", start_time: T0 + 1.5, end_time: T0 + 1.6, aws: { xray: { sdk: "opentelemetry for python" } } },
    { id: "x1", parent_id: "gone", name: "lost", start_time: T0 + 1.9, in_progress: true },
  ];
}

describe("trace tree layout (SC-008 one tree across SNS; SC-010 orphans counted, never hidden)", () => {
  it("SC-008 rows depth-first from the root, children in start order, across the SNS hop", () => {
    const layout = layoutTrace(TRACE, pipeline());
    expect(layout.rows.map((r) => `${"  ".repeat(r.depth)}${r.id}`)).toEqual([
      "i1", "  i2", "    i3", "      p1", "      s0", "        s1", "          a1", "            a2", "              n1",
      "    o1", "x1",
    ]);
    const chain = (id: string): string[] => {
      const row = layout.rows.find((r) => r.id === id);
      return row?.parentId ? [...chain(row.parentId), id] : [id];
    };
    expect(chain("n1")).toEqual(["i1", "i2", "i3", "s0", "s1", "a1", "a2", "n1"]); // ingestion → SNS → analysis → notification
  });

  it("SC-008 positions and durations are fractions of the whole trace", () => {
    const layout = layoutTrace(TRACE, pipeline());
    expect(layout.durationMs).toBeCloseTo(2000, 3);
    const byId = Object.fromEntries(layout.rows.map((r) => [r.id, r]));
    expect(byId.i1).toMatchObject({ offsetPct: 0, widthPct: 100 });
    expect(byId.i1?.durationMs).toBeCloseTo(2000, 3);
    expect(byId.a1?.offsetPct).toBeCloseTo(27.5, 4);
    expect(byId.a1?.widthPct).toBeCloseTo(22.5, 4);
    expect(byId.s1?.durationMs).toBeCloseTo(0.2, 3);
    expect(byId.x1).toMatchObject({ durationMs: 0, widthPct: 0, inProgress: true }); // no end_time yet
  });

  it("SC-010 faults, errors, kinds, annotations and causes are carried to the row; orphans are counted", () => {
    const layout = layoutTrace(TRACE, pipeline());
    const byId = Object.fromEntries(layout.rows.map((r) => [r.id, r]));
    expect(byId.p1).toMatchObject({ fault: true, error: false, cause: "AuthorizationError: denied", kind: "subsegment" });
    expect(byId.s0).toMatchObject({ fault: false, error: true });
    expect(byId.i3?.annotations).toEqual({ new_items: 3 });
    expect(byId.i1?.kind).toBe("segment");
    expect(byId.o1?.kind).toBe("span");
    expect(byId.x1).toMatchObject({ depth: 0, parentId: null });
    expect(layout.orphans).toBe(1);
  });

  it("SC-010 an empty trace lays out as nothing, without dividing by zero", () => {
    expect(layoutTrace(TRACE, [])).toEqual({ traceId: TRACE, startTime: 0, durationMs: 0, rows: [], orphans: 0 });
    const [only] = layoutTrace(TRACE, [{ id: "z", name: "z", start_time: T0, end_time: T0 }]).rows;
    expect(only).toMatchObject({ offsetPct: 0, widthPct: 0 });
  });

  it("durations read as people read them", () => {
    expect(formatDuration(0.4)).toBe("0.4 ms");
    expect(formatDuration(35)).toBe("35.0 ms");
    expect(formatDuration(1234)).toBe("1.23 s");
  });
});
