import { describe, expect, it } from "vitest";
import {
  TRACE_HEADER_PATTERN,
  TraceContext,
  browserTraceIdSource,
  newSegmentId,
  newTraceId,
  traceIdFromHeader,
} from "../src/trace";
import type { TraceIdSource } from "../src/trace";

const fixedBytes = (fill: number): TraceIdSource => ({
  now: () => Date.UTC(2026, 10, 25, 8, 0, 0, 999),
  randomBytes: (length) => new Uint8Array(length).fill(fill),
});

describe("trace header format", () => {
  it("FR-016 the trace id is 1-<8 hex epoch seconds>-<24 hex random>", () => {
    const id = newTraceId(fixedBytes(0x3c));
    const epochSeconds = Math.floor(Date.UTC(2026, 10, 25, 8, 0, 0) / 1000);
    expect(id).toBe(`1-${epochSeconds.toString(16)}-${"3c".repeat(12)}`);
    expect(id.split("-")[1]).toHaveLength(8);
  });

  it("FR-016 pads the epoch to 8 hex digits", () => {
    const early: TraceIdSource = { now: () => 255_000, randomBytes: (n) => new Uint8Array(n).fill(1) };
    expect(newTraceId(early)).toBe(`1-000000ff-${"01".repeat(12)}`);
  });

  it("FR-016 sends X-Amzn-Trace-Id as Root;Parent without Sampled", () => {
    const header = new TraceContext(browserTraceIdSource).header();
    expect(header).toMatch(TRACE_HEADER_PATTERN);
    expect(header).not.toMatch(/Sampled/i);
    expect(header.split(";")).toHaveLength(2);
  });

  it("FR-016 one action keeps its root and gives each request its own Parent", () => {
    const context = new TraceContext(browserTraceIdSource);
    const headers = Array.from({ length: 5 }, () => context.header());
    const roots = new Set(headers.map((h) => traceIdFromHeader(h)));
    const parents = new Set(headers.map((h) => h.split("Parent=")[1]));
    expect(roots).toEqual(new Set([context.root]));
    expect(parents.size).toBe(5);
    expect(new TraceContext(browserTraceIdSource).root).not.toBe(context.root);
  });

  it("FR-016 a Parent is 16 hex and never all zeros", () => {
    let calls = 0;
    const source: TraceIdSource = {
      now: () => 0,
      randomBytes: (n) => new Uint8Array(n).fill(calls++ === 0 ? 0 : 0xa5),
    };
    expect(newSegmentId(source)).toBe("a5".repeat(8));
    expect(calls).toBe(2);
  });

  it("FR-082 reads the trace id out of a response's x-amzn-trace-id", () => {
    const id = "1-6925e2a0-0123456789abcdef01234567";
    expect(traceIdFromHeader(`Root=${id};Parent=53995c3f42cd8ad8;Sampled=1`)).toBe(id);
    expect(traceIdFromHeader(`Parent=53995c3f42cd8ad8; Root=${id}`)).toBe(id);
    expect(traceIdFromHeader(`Root=${id}`)).toBe(id);
    expect(traceIdFromHeader(id)).toBe(id);
    expect(traceIdFromHeader("Root=1-xyz;Parent=1")).toBeNull();
    expect(traceIdFromHeader("")).toBeNull();
    expect(traceIdFromHeader(null)).toBeNull();
  });
});
