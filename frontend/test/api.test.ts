import { describe, expect, it } from "vitest";
import { ApiClient, ApiError, displayTraceId } from "../src/api";
import type { RequestTrace } from "../src/api";
import { TRACE_HEADER_PATTERN, traceIdFromHeader } from "../src/trace";
import { ManualClock, ScriptedFetch, countingIds, networkError } from "./helpers";

const json = (body: unknown, status = 200, headers: Record<string, string> = {}) => () =>
  new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json", ...headers } });

function client(script: ScriptedFetch, baseUrl?: string) {
  const traces: RequestTrace[] = [];
  const clock = new ManualClock();
  const api = new ApiClient({ fetch: script.fetch, ids: countingIds(clock), baseUrl, onTrace: (t) => traces.push(t) });
  return { api, traces, clock };
}

describe("API client", () => {
  it("FR-016 sends X-Amzn-Trace-Id without Sampled on every request", async () => {
    const script = new ScriptedFetch().then(
      json({ tickers: [] }),
      json({ sentiment: {} }),
      json({ items: [], next_cursor: null }),
      json({ ticker: "AAPL", resolution: "5m", buckets: [] }),
      json({ status: "ok" }),
      json({ alerts: [] }),
      json({ alert_id: "a1", ticker: "AAPL", direction: "above", threshold: 0.5, email: "o@example.com" }, 201),
      () => new Response(null, { status: 204 }),
    );
    const { api } = client(script);
    await api.tickers();
    await api.sentiment(["AAPL", "MSFT"]);
    await api.items("AAPL", { limit: 5 });
    await api.timeseries("AAPL", "5m");
    await api.health();
    await api.alerts();
    await api.createAlert({ ticker: "AAPL", direction: "above", threshold: 0.5 });
    await api.deleteAlert("a1");

    expect(script.calls).toHaveLength(8);
    for (const call of script.calls) {
      const header = call.headers["x-amzn-trace-id"];
      expect(header).toMatch(TRACE_HEADER_PATTERN);
      expect(header).not.toMatch(/Sampled/i);
    }
  });

  it("FR-016 a fresh root per user action, shared by the requests of that action", async () => {
    const script = new ScriptedFetch().then(json({}), json({}), json({}), json({}));
    const { api } = client(script);
    const action = api.action();
    await api.tickers(action);
    await api.alerts(action);
    await api.tickers();
    await api.tickers();
    const roots = script.calls.map((call) => traceIdFromHeader(call.headers["x-amzn-trace-id"]));
    expect(roots[0]).toBe(action.root);
    expect(roots[1]).toBe(action.root);
    expect(script.calls[0]!.headers["x-amzn-trace-id"]).not.toBe(script.calls[1]!.headers["x-amzn-trace-id"]);
    expect(new Set(roots).size).toBe(3);
  });

  it("FR-016 the root's first field is the request time in epoch seconds", async () => {
    const script = new ScriptedFetch().then(json({}));
    const { api, clock } = client(script);
    await api.health();
    const root = traceIdFromHeader(script.calls[0]!.headers["x-amzn-trace-id"])!;
    expect(parseInt(root.split("-")[1]!, 16)).toBe(Math.floor(clock.now() / 1000));
  });

  it("FR-082 reads the response's x-amzn-trace-id and exposes the last one", async () => {
    const served = "1-6925e2a0-aaaaaaaaaaaaaaaaaaaaaaaa";
    const script = new ScriptedFetch().then(
      json({ tickers: [{ ticker: "AAPL", name: "Apple Inc." }] }, 200, {
        "x-amzn-trace-id": `Root=${served};Parent=53995c3f42cd8ad8;Sampled=1`,
      }),
      json({ alerts: [] }),
    );
    const { api, traces } = client(script);
    expect(api.lastTraceId).toBeNull();
    const result = await api.tickers();
    expect(result.data.tickers[0]!.ticker).toBe("AAPL");
    expect(result.trace.responseTraceId).toBe(served);
    expect(result.trace.status).toBe(200);
    expect(api.lastTraceId).toBe(served);
    expect(displayTraceId(result.trace)).toBe(served);

    // No header in the answer: nothing to expose, the UI falls back to the root it sent.
    const second = await api.alerts();
    expect(api.lastTraceId).toBeNull();
    expect(displayTraceId(second.trace)).toBe(second.trace.root);
    expect(traces.map((t) => t.path)).toEqual(["/api/v2/tickers", "/api/v2/alerts"]);
  });

  it("uses relative URLs by default and a base URL when configured", async () => {
    const script = new ScriptedFetch().then(json({}), json({}), json({}));
    await client(script).api.sentiment(["AAPL", "BRK.B"]);
    await client(script, "https://api.example.test/").api.timeseries("AAPL", "1h");
    await client(script).api.items("AAPL", { limit: 5, cursor: "abc=" });
    expect(script.calls.map((c) => c.url)).toEqual([
      "/api/v2/sentiment?tickers=AAPL%2CBRK.B",
      "https://api.example.test/api/v2/timeseries/AAPL?resolution=1h",
      "/api/v2/items?ticker=AAPL&limit=5&cursor=abc%3D",
    ]);
  });

  it("posts alert rules as JSON and accepts 204 on delete", async () => {
    const rule = { ticker: "MSFT", direction: "below" as const, threshold: -0.3, email: "ops@example.com" };
    const script = new ScriptedFetch().then(json({ alert_id: "x1", ...rule }, 201), () => new Response(null, { status: 204 }));
    const { api } = client(script);
    const created = await api.createAlert(rule);
    expect(created.data.alert_id).toBe("x1");
    expect(script.calls[0]!.init.method).toBe("POST");
    expect(script.calls[0]!.headers["content-type"]).toBe("application/json");
    expect(JSON.parse(String(script.calls[0]!.init.body))).toEqual(rule);
    const deleted = await api.deleteAlert("x 1/2");
    expect(deleted.data).toBeUndefined();
    expect(script.calls[1]!.url).toBe("/api/v2/alerts/x%201%2F2");
    expect(script.calls[1]!.init.method).toBe("DELETE");
  });

  it("turns an error answer into an ApiError with its code, message and trace", async () => {
    const served = "1-6925e2a0-bbbbbbbbbbbbbbbbbbbbbbbb";
    const script = new ScriptedFetch().then(
      json({ error: "invalid_threshold", message: "threshold must be in [-1, 1]" }, 400, {
        "x-amzn-trace-id": `Root=${served}`,
      }),
      () => new Response("<h1>Bad gateway</h1>", { status: 502 }),
      networkError,
    );
    const { api } = client(script);
    const rule = { ticker: "AAPL", direction: "above" as const, threshold: 3, email: "o@example.com" };

    const first = await api.createAlert(rule).catch((e: unknown) => e);
    expect(first).toBeInstanceOf(ApiError);
    expect(first).toMatchObject({ status: 400, code: "invalid_threshold", message: "threshold must be in [-1, 1]" });
    expect((first as ApiError).trace.responseTraceId).toBe(served);

    const second = await api.alerts().catch((e: unknown) => e);
    expect(second).toMatchObject({ status: 502, code: "http_502" });

    const third = await api.alerts().catch((e: unknown) => e);
    expect(third).toMatchObject({ status: null, code: "network_error" });
    expect((third as ApiError).trace.requestHeader).toMatch(TRACE_HEADER_PATTERN);
  });
});
