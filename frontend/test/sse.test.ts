import { describe, expect, it } from "vitest";
import {
  DEFAULT_POLICY,
  SseClient,
  backoffCeiling,
  backoffDelay,
  parseRetryAfter,
  reconnectDelay,
} from "../src/sse";
import type { ConnectionState, SseClientOptions, SseMessage } from "../src/sse";
import { TRACE_HEADER_PATTERN, traceIdFromHeader } from "../src/trace";
import { ManualClock, ScriptedFetch, SseBody, countingIds, networkError, settle, sseResponse, until } from "./helpers";
import type { RecordedCall } from "./helpers";

const URL = "/api/v2/stream";
const SESSION = "0b5c7f3e-4d1a-4c1e-9d59-6d7f2f3c1a11";
const responseTrace = (n: number) => `1-6925e2a0-${String(n).padStart(24, "0")}`;

function harness(options: Partial<SseClientOptions> = {}) {
  const clock = new ManualClock();
  const script = new ScriptedFetch();
  const states: ConnectionState[] = [];
  const messages: SseMessage[] = [];
  const client = new SseClient({
    url: URL,
    fetch: script.fetch,
    clock,
    random: () => 0,
    ids: countingIds(clock),
    sessionId: SESSION,
    onState: (state) => states.push(state),
    onMessage: (message) => messages.push(message),
    ...options,
  });
  const statuses = () => states.map((state) => state.status);
  const reconnecting = () => {
    const state = client.state;
    if (state.status !== "reconnecting") throw new Error(`expected reconnecting, got ${state.status}`);
    return state;
  };
  return { clock, script, states, statuses, messages, client, reconnecting };
}

/** A stream that sends `retry:`, some events, then ends normally (the server's graceful close). */
function gracefulStream(frames: string, headers: Record<string, string> = {}) {
  return () => {
    const body = new SseBody();
    body.push(frames);
    body.close();
    return sseResponse(body, headers);
  };
}

describe("SSE client transport", () => {
  it("FR-032 reads the stream with fetch() + ReadableStream and parses frames split across chunks", async () => {
    const { script, client, messages, clock } = harness();
    const body = new SseBody();
    script.then(() => sseResponse(body));
    void client.start();
    await until(() => client.state.status === "live", "live");

    body.push("retry: 3000\n\n");
    body.push('id: 0001\nevent: sentiment_update\ndata: {"ticker":"AA');
    body.push('PL","score":0.5}\n');
    body.push("\nevent: heartbeat\ndata: {\"ts\":\"2026-11-25T08:00:00.000Z\"}\n\n");
    body.push("data: line one\ndata: line two\n\n");
    await until(() => messages.length === 3, "3 messages");

    expect(script.calls[0]!.init.method).toBe("GET");
    expect(script.calls[0]!.headers["accept"]).toBe("text/event-stream");
    expect(messages[0]).toEqual({ event: "sentiment_update", id: "0001", data: '{"ticker":"AAPL","score":0.5}' });
    expect(messages[1]).toEqual({ event: "heartbeat", id: undefined, data: '{"ts":"2026-11-25T08:00:00.000Z"}' });
    expect(messages[2]).toEqual({ event: "message", id: undefined, data: "line one\nline two" });
    expect(client.serverRetryMs).toBe(3000);
    client.stop();
    await clock.advance(60_000);
    expect(script.calls).toHaveLength(1);
  });

  it("FR-033 exposes its connection state: connecting, live, reconnecting, then connecting again", async () => {
    const { script, client, clock, statuses } = harness();
    script.then(gracefulStream("retry: 2000\n\nevent: heartbeat\ndata: {}\n\n"));
    void client.start();
    await until(() => client.state.status === "reconnecting", "reconnecting");
    expect(statuses()).toEqual(["connecting", "live", "reconnecting"]);
    await clock.advance(2000);
    expect(statuses()).toEqual(["connecting", "live", "reconnecting", "connecting"]);
    client.stop();
    expect(client.state).toEqual({ status: "offline", reason: "stopped", detail: "stopped" });
  });
});

describe("SSE client reconnect policy", () => {
  it("FR-089 SC-038 waits the server's retry: value after an unannounced graceful close, whatever the jitter", async () => {
    const { script, client, clock, reconnecting } = harness({ random: () => 0.9 });
    script.then(gracefulStream("retry: 2500\n\nid: 1\nevent: sentiment_update\ndata: {}\n\n"));
    void client.start();
    await until(() => client.state.status === "reconnecting", "reconnecting");

    const state = reconnecting();
    expect(state.reason).toBe("graceful");
    expect(state.delayMs).toBe(2500);
    expect(state.retryAt).toBe(clock.now() + 2500);
    expect(clock.pending()).toEqual([2500]);

    await clock.advance(2499);
    expect(script.calls).toHaveLength(1);
    await clock.advance(1);
    expect(script.calls).toHaveLength(2);
    client.stop();
  });

  it("FR-090 FR-089 reconnects at once after the server's final reconnect event, from that event's id", async () => {
    const { script, client, clock, reconnecting } = harness({ random: () => 0.9 });
    script.then(
      gracefulStream(
        "retry: 2500\n\nid: t1/a\nevent: sentiment_update\ndata: {}\n\n" +
          'retry: 0\nid: t1/a/000002\nevent: reconnect\ndata: {"reason":"lifetime","reconnect_after_ms":0}\n\n',
      ),
      gracefulStream("retry: 2500\n\nid: t1/a/000001\nevent: heartbeat\ndata: {}\n\n"),
    );
    void client.start();
    await until(() => client.state.status === "reconnecting", "reconnecting");
    const state = reconnecting();
    expect([state.reason, state.delayMs, state.failures]).toEqual(["graceful", 0, 0]);
    expect(state.detail).toBe("stream ended by the server: resuming");
    await clock.advance(0); // no time passes: the next connection starts at once
    await until(() => script.calls.length === 2, "second connection");
    expect(script.calls[1]!.headers["last-event-id"]).toBe("t1/a/000002");
    client.stop();
  });

  it("FR-090 the reconnect event's reconnect_after_ms decides even without retry: 0 in its frame", async () => {
    const { script, client, reconnecting } = harness();
    script.then(gracefulStream('retry: 2500\n\nid: x/1\nevent: reconnect\ndata: {"reason":"deadline","reconnect_after_ms":0}\n\n'));
    void client.start();
    await until(() => client.state.status === "reconnecting", "reconnecting");
    expect(reconnecting().delayMs).toBe(0);
    client.stop();
  });

  it("FR-089 keeps the retry: value of an earlier connection when a later one sends none", async () => {
    const { script, client, clock, reconnecting } = harness();
    script.then(gracefulStream("retry: 700\n\n"), gracefulStream("event: heartbeat\ndata: {}\n\n"));
    void client.start();
    await until(() => client.state.status === "reconnecting", "first reconnect");
    await clock.advance(700);
    await until(() => client.state.status === "reconnecting" && script.calls.length === 2, "second reconnect");
    expect(reconnecting().delayMs).toBe(700);
    client.stop();
  });

  it("FR-033 FR-083 backs off exponentially on network errors, capped at the maximum", async () => {
    const { script, client, clock, reconnecting } = harness();
    const expected = [1000, 2000, 4000, 8000, 16000, 30000, 30000];
    script.then(...expected.map(() => networkError));
    void client.start();
    for (const [index, delay] of expected.entries()) {
      await until(() => client.state.status === "reconnecting" && script.calls.length === index + 1, `failure ${index + 1}`);
      const state = reconnecting();
      expect(state.reason).toBe("network");
      expect(state.failures).toBe(index + 1);
      expect(state.delayMs).toBe(delay);
      await clock.advance(delay - 1);
      expect(script.calls).toHaveLength(index + 1);
      await clock.advance(1);
      expect(script.calls).toHaveLength(index + 2);
    }
    client.stop();
  });

  it("FR-083 SC-038 treats a stream broken mid-way as a network error (backoff), not a graceful close", async () => {
    const { script, client, reconnecting } = harness({ random: () => 0.5 });
    const body = new SseBody();
    script.then(() => sseResponse(body));
    void client.start();
    await until(() => client.state.status === "live", "live");
    body.push("retry: 5000\n\nid: 7\nevent: sentiment_update\ndata: {}\n\n");
    await until(() => client.lastEventId === "7", "event");
    body.fail(new TypeError("network error"));
    await until(() => client.state.status === "reconnecting", "reconnecting");

    const state = reconnecting();
    expect(state.reason).toBe("network");
    expect(state.delayMs).not.toBe(5000);
    // First failure after a working connection: the backoff starts from its beginning (1 s, jitter 0.5 * 0.5).
    expect(state.delayMs).toBe(750);
    client.stop();
  });

  it("FR-033 a connection that delivered frames resets the backoff even if it then breaks", async () => {
    const { script, client, clock, reconnecting } = harness();
    const body = new SseBody();
    script.then(networkError, networkError, () => sseResponse(body));
    void client.start();
    await until(() => client.state.status === "reconnecting", "1");
    await clock.advance(1000);
    await until(() => client.state.status === "reconnecting" && script.calls.length === 2, "2");
    expect(reconnecting().delayMs).toBe(2000);
    await clock.advance(2000);
    await until(() => client.state.status === "live", "live");
    body.push("retry: 9000\n\n");
    await settle();
    body.fail();
    await until(() => client.state.status === "reconnecting", "3");
    expect(reconnecting()).toMatchObject({ reason: "network", failures: 1, delayMs: 1000 });
    client.stop();
  });

  it("FR-083 SC-038 a graceful close after failures uses retry: and resets the backoff", async () => {
    const { script, client, clock, reconnecting } = harness();
    script.then(networkError, networkError, networkError, gracefulStream("retry: 400\n\n"), networkError);
    void client.start();
    for (const delay of [1000, 2000, 4000]) {
      await until(() => client.state.status === "reconnecting", "reconnecting");
      expect(reconnecting().delayMs).toBe(delay);
      await clock.advance(delay);
    }
    await until(() => client.state.status === "reconnecting" && script.calls.length === 4, "graceful");
    expect(reconnecting().reason).toBe("graceful");
    expect(reconnecting().delayMs).toBe(400);
    expect(reconnecting().failures).toBe(0);
    await clock.advance(400);
    await until(() => client.state.status === "reconnecting" && script.calls.length === 5, "network again");
    expect(reconnecting().reason).toBe("network");
    expect(reconnecting().delayMs).toBe(1000);
    client.stop();
  });

  it("FR-083 SC-038 waits exactly Retry-After on HTTP 503, then reconnects", async () => {
    const { script, client, clock, reconnecting } = harness({ random: () => 0.99 });
    script.then(
      () => new Response("over the connection limit", { status: 503, headers: { "Retry-After": "7" } }),
      gracefulStream("retry: 1000\n\n"),
    );
    void client.start();
    await until(() => client.state.status === "reconnecting", "reconnecting");
    const state = reconnecting();
    expect(state.reason).toBe("http");
    expect(state.httpStatus).toBe(503);
    expect(state.delayMs).toBe(7000);
    await clock.advance(6999);
    expect(script.calls).toHaveLength(1);
    await clock.advance(1);
    expect(script.calls).toHaveLength(2);
    client.stop();
  });

  it("FR-083 honours Retry-After given as an HTTP date", async () => {
    const { script, client, clock, reconnecting } = harness();
    const at = new Date(clock.now() + 12_000).toUTCString();
    script.then(() => new Response(null, { status: 503, headers: { "Retry-After": at } }));
    void client.start();
    await until(() => client.state.status === "reconnecting", "reconnecting");
    expect(reconnecting().delayMs).toBe(12_000);
    client.stop();
  });

  it("FR-083 HTTP 503 without Retry-After falls back to the exponential backoff", async () => {
    const { script, client, clock, reconnecting } = harness();
    script.then(
      () => new Response(null, { status: 503 }),
      () => new Response(null, { status: 503 }),
    );
    void client.start();
    await until(() => client.state.status === "reconnecting", "reconnecting");
    expect(reconnecting().delayMs).toBe(1000);
    await clock.advance(1000);
    await until(() => client.state.status === "reconnecting" && script.calls.length === 2, "second");
    expect(reconnecting().delayMs).toBe(2000);
    client.stop();
  });

  it("FR-033 goes offline without retrying on 401, 404 and 204", async () => {
    for (const status of [401, 404, 204]) {
      const { script, client, clock } = harness();
      script.then(() => new Response(null, { status }));
      await client.start();
      expect(client.state.status).toBe("offline");
      expect(client.state).toMatchObject({ reason: "fatal" });
      await clock.advance(600_000);
      expect(script.calls).toHaveLength(1);
    }
  });

  it("FR-083 a 200 that is not an event stream, or an empty stream, backs off like a failure", async () => {
    const { script, client, clock, reconnecting } = harness();
    script.then(
      () => new Response("<html></html>", { status: 200, headers: { "Content-Type": "text/html" } }),
      gracefulStream(""),
    );
    void client.start();
    await until(() => client.state.status === "reconnecting", "first");
    expect(reconnecting()).toMatchObject({ reason: "protocol", delayMs: 1000 });
    await clock.advance(1000);
    await until(() => client.state.status === "reconnecting" && script.calls.length === 2, "second");
    expect(reconnecting()).toMatchObject({ reason: "protocol", delayMs: 2000 });
    client.stop();
  });

  it("FR-083 reconnects when the stream goes silent longer than the idle timeout", async () => {
    const { script, client, clock, reconnecting } = harness({ idleTimeoutMs: 45_000 });
    const body = new SseBody();
    script.then(() => sseResponse(body));
    void client.start();
    await until(() => client.state.status === "live", "live");
    body.push("retry: 1000\n\n");
    await clock.advance(30_000);
    body.push(": keep-alive\n\n");
    await clock.advance(30_000);
    expect(client.state.status).toBe("live");
    await clock.advance(15_000);
    expect(reconnecting().reason).toBe("network");
    expect(reconnecting().detail).toContain("no data for 45000 ms");
    expect(body.cancelled).toBe(true);
    client.stop();
  });
});

describe("SSE backoff bounds", () => {
  it("FR-033 the delay stays within [ceiling * (1 - jitter), ceiling] and the ceiling doubles up to the cap", () => {
    const policy = DEFAULT_POLICY;
    for (let failures = 1; failures <= 15; failures += 1) {
      const ceiling = Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** (failures - 1));
      expect(backoffCeiling(failures)).toBe(ceiling);
      for (const r of [0, 0.001, 0.25, 0.5, 0.75, 0.999999]) {
        const delay = backoffDelay(failures, () => r);
        expect(delay).toBeGreaterThanOrEqual(ceiling * (1 - policy.jitter));
        expect(delay).toBeLessThanOrEqual(ceiling);
        expect(delay).toBeLessThanOrEqual(policy.maxDelayMs);
      }
    }
    expect(backoffDelay(1, () => 0)).toBe(1000);
    expect(backoffDelay(1, () => 1)).toBe(500);
    expect(backoffDelay(20, () => 0)).toBe(30_000);
  });

  it("FR-033 jitter spreads clients apart: different random draws give different delays", () => {
    const delays = new Set([0.1, 0.3, 0.6, 0.9].map((r) => backoffDelay(4, () => r)));
    expect(delays.size).toBe(4);
  });

  it("FR-083 SC-038 picks the delay by how the connection ended", () => {
    const random = () => 0.5;
    expect(reconnectDelay({ kind: "graceful", retryMs: 3000 }, 0, random)).toBe(3000);
    expect(reconnectDelay({ kind: "graceful", retryMs: null }, 0, random)).toBe(DEFAULT_POLICY.gracefulDelayMs);
    expect(reconnectDelay({ kind: "network", error: "x" }, 3, random)).toBe(3000);
    expect(reconnectDelay({ kind: "http", status: 503, retryAfterMs: 7000 }, 3, random)).toBe(7000);
    expect(reconnectDelay({ kind: "http", status: 503, retryAfterMs: null }, 3, random)).toBe(3000);
    expect(reconnectDelay({ kind: "http", status: 503, retryAfterMs: 86_400_000 }, 1, random)).toBe(
      DEFAULT_POLICY.maxRetryAfterMs,
    );
  });

  it("FR-083 parses Retry-After seconds and dates, and ignores garbage", () => {
    const now = Date.UTC(2026, 10, 25, 8, 0, 0);
    expect(parseRetryAfter("7", now)).toBe(7000);
    expect(parseRetryAfter(" 0 ", now)).toBe(0);
    expect(parseRetryAfter(new Date(now + 5000).toUTCString(), now)).toBe(5000);
    expect(parseRetryAfter(new Date(now - 5000).toUTCString(), now)).toBe(0);
    expect(parseRetryAfter("soon", now)).toBeNull();
    expect(parseRetryAfter("-3", now)).toBeNull();
    expect(parseRetryAfter(null, now)).toBeNull();
  });
});

/**
 * A server like ours, reduced to its resume rule: analysed items in (ts, item) order, ids
 * `<ts>/<item>`; a control event's id is `<cursor>/<sequence>`; a request with `Last-Event-ID`
 * gets only the items after the cursor that id names. Each connection delivers what is there,
 * then ends itself with a `reconnect` event (FR-090).
 */
class ResumingServer {
  readonly items: string[] = [];
  private sequence = 0;

  write(...ids: string[]): void {
    this.items.push(...ids);
  }

  respond = (call: RecordedCall): Response => {
    const lastId = call.headers["last-event-id"];
    const cursor = lastId === undefined ? "" : lastId.split("/").slice(0, 2).join("/");
    const fresh = this.items.filter((id) => id > cursor);
    const end = fresh.at(-1) ?? cursor;
    const body = new SseBody();
    body.push(`retry: 1000\nid: ${cursor}/00000${++this.sequence}\nevent: heartbeat\ndata: {}\n\n`);
    for (const id of fresh) body.push(`id: ${id}\nevent: sentiment_update\ndata: {"item_id":"${id}"}\n\n`);
    body.push(`retry: 0\nid: ${end}/00000${++this.sequence}\nevent: reconnect\ndata: {"reason":"lifetime","reconnect_after_ms":0}\n\n`);
    body.close();
    return sseResponse(body);
  };
}

describe("SSE resume and correlation headers", () => {
  it("FR-090 FR-081 SC-036 resumes after each lifetime end: items written in the gap arrive once, nothing twice", async () => {
    const server = new ResumingServer();
    const { script, client, clock, messages } = harness();
    const updates = () => messages.filter((m) => m.event === "sentiment_update").map((m) => m.id);
    server.write("2026-11-25T08:00:00.001Z/a1", "2026-11-25T08:00:00.002Z/a2");
    script.then(
      server.respond,
      (call) => {
        // written after the first stream ended, before the client came back: the resume gap
        server.write("2026-11-25T08:00:01.000Z/g1", "2026-11-25T08:00:01.000Z/g2");
        return server.respond(call);
      },
      server.respond, // nothing new: nothing is repeated
    );
    void client.start();
    // The clock never moves: each reconnect waits 0 ms, so the fourth attempt is under way once the
    // third stream ended (it stays pending: nothing answers it).
    const started = clock.now();
    for (let round = 0; round < 50 && script.calls.length < 4; round += 1) await clock.advance(0);
    expect(script.calls).toHaveLength(4);
    expect(clock.now()).toBe(started);
    expect(script.calls.map((call) => call.headers["last-event-id"])).toEqual([
      undefined,
      "2026-11-25T08:00:00.002Z/a2/000002",
      "2026-11-25T08:00:01.000Z/g2/000004",
      "2026-11-25T08:00:01.000Z/g2/000006",
    ]);
    expect(updates()).toEqual([
      "2026-11-25T08:00:00.001Z/a1",
      "2026-11-25T08:00:00.002Z/a2",
      "2026-11-25T08:00:01.000Z/g1",
      "2026-11-25T08:00:01.000Z/g2",
    ]);
    expect(messages.filter((m) => m.event === "reconnect")).toHaveLength(3);
    client.stop();
  });

  it("FR-081 FR-083 a cut mid-frame loses nothing: the partial event is dropped and sent again after the resume", async () => {
    const server = new ResumingServer();
    const { script, client, clock, messages } = harness();
    server.write("t1/i1", "t2/i2");
    const cut = new SseBody();
    script.then(() => {
      cut.push('retry: 1000\nid: t0/~/000001\nevent: heartbeat\ndata: {}\n\nid: t1/i1\nevent: sentiment_update\ndata: {"item_id":"t1/i1"}\n\n');
      cut.push('id: t2/i2\nevent: sentiment_update\ndata: {"item_id":"t2');
      return sseResponse(cut);
    });
    void client.start();
    await until(() => messages.length === 2, "two complete events");
    cut.fail();
    await until(() => client.state.status === "reconnecting", "network error");
    expect(client.state.status === "reconnecting" && client.state.reason).toBe("network");
    script.then(server.respond);
    await clock.advance(1000);
    await until(() => script.calls.length === 3, "resumed, ended, reconnecting");
    expect(script.calls[1]!.headers["last-event-id"]).toBe("t1/i1");
    const updates = messages.filter((m) => m.event === "sentiment_update").map((m) => m.id);
    expect(updates).toEqual(["t1/i1", "t2/i2"]);
    client.stop();
  });

  it("FR-033 sends Last-Event-ID with the last id received, across failed connections too", async () => {
    const { script, client, clock } = harness();
    script.then(
      gracefulStream("retry: 100\n\nid: 0005\nevent: sentiment_update\ndata: {}\n\nid: 0009\nevent: sentiment_update\ndata: {}\n\nevent: heartbeat\ndata: {}\n\n"),
      networkError,
      gracefulStream("retry: 100\n\n"),
    );
    void client.start();
    await until(() => client.state.status === "reconnecting", "first close");
    expect(script.calls[0]!.headers["last-event-id"]).toBeUndefined();
    expect(client.lastEventId).toBe("0009");
    await clock.advance(100);
    await until(() => script.calls.length === 2 && client.state.status === "reconnecting", "failure");
    await clock.advance(1000);
    await until(() => script.calls.length === 3, "third");
    expect(script.calls[1]!.headers["last-event-id"]).toBe("0009");
    expect(script.calls[2]!.headers["last-event-id"]).toBe("0009");
    client.stop();
  });

  it("FR-033 starts from a given Last-Event-ID and forgets it when the server sends an empty id", async () => {
    const { script, client, clock } = harness({ lastEventId: "0042" });
    script.then(gracefulStream("retry: 10\n\nid\ndata: reset\n\n"), gracefulStream("retry: 10\n\n"));
    void client.start();
    await until(() => client.state.status === "reconnecting", "close");
    await clock.advance(10);
    await until(() => script.calls.length === 2, "second");
    expect(script.calls[0]!.headers["last-event-id"]).toBe("0042");
    expect(script.calls[1]!.headers["last-event-id"]).toBeUndefined();
    client.stop();
  });

  it("FR-048 SC-020 rotates the trace header and carries session, sequence and previous trace id", async () => {
    const { script, client, clock } = harness();
    script.then(
      gracefulStream("retry: 50\n\n", { "x-amzn-trace-id": `Root=${responseTrace(1)};Parent=1111111111111111;Sampled=1` }),
      networkError,
      () => new Response(null, { status: 503, headers: { "Retry-After": "1", "x-amzn-trace-id": `Root=${responseTrace(3)}` } }),
      gracefulStream("retry: 50\n\n", { "x-amzn-trace-id": `Root=${responseTrace(4)};Parent=4444444444444444` }),
    );
    void client.start();
    await until(() => client.state.status === "reconnecting", "1");
    await clock.advance(50);
    await until(() => script.calls.length === 2 && client.state.status === "reconnecting", "2");
    await clock.advance(1000);
    await until(() => script.calls.length === 3 && client.state.status === "reconnecting", "3");
    await clock.advance(1000);
    await until(() => script.calls.length === 4 && client.state.status === "reconnecting", "4");
    client.stop();

    const headers = script.calls.map((call) => call.headers);
    expect(headers.map((h) => h["x-sse-connection-sequence"])).toEqual(["1", "2", "3", "4"]);
    expect(new Set(headers.map((h) => h["x-sse-session-id"]))).toEqual(new Set([SESSION]));
    for (const h of headers) expect(h["x-amzn-trace-id"]).toMatch(TRACE_HEADER_PATTERN);
    const roots = headers.map((h) => traceIdFromHeader(h["x-amzn-trace-id"]));
    expect(new Set(roots).size).toBe(4);
    // The previous response's trace id; a connection that got no response leaves it unchanged.
    expect(headers.map((h) => h["x-sse-previous-trace-id"])).toEqual([
      undefined,
      responseTrace(1),
      responseTrace(1),
      responseTrace(3),
    ]);
    expect(client.lastResponseTraceId).toBe(responseTrace(4));
    expect(client.sequence).toBe(4);
  });

  it("FR-016 FR-048 every connection sends X-Amzn-Trace-Id without Sampled, plus extra headers given", async () => {
    const { script, client } = harness({ headers: { "X-Auth-Token": "t0ken" } });
    script.then(gracefulStream("retry: 50\n\n"));
    void client.start();
    await until(() => client.state.status === "reconnecting", "close");
    client.stop();
    const header = script.calls[0]!.headers["x-amzn-trace-id"]!;
    expect(header).not.toMatch(/Sampled/i);
    expect(header).toMatch(TRACE_HEADER_PATTERN);
    expect(script.calls[0]!.headers["x-auth-token"]).toBe("t0ken");
  });

  it("FR-048 SC-020 uses one random session id per client when none is given", () => {
    const first = new SseClient({ url: URL, fetch: new ScriptedFetch().fetch });
    const second = new SseClient({ url: URL, fetch: new ScriptedFetch().fetch });
    expect(first.sessionId).toMatch(/^[0-9a-f-]{36}$/);
    expect(first.sessionId).not.toBe(second.sessionId);
  });

  it("FR-082 exposes the response trace id of the live connection and whether resume is supported", async () => {
    const { script, client } = harness();
    const body = new SseBody();
    script.then(() =>
      sseResponse(body, { "x-amzn-trace-id": `Root=${responseTrace(9)};Parent=9999999999999999`, "X-SSE-Resume-Supported": "false" }),
    );
    void client.start();
    await until(() => client.state.status === "live", "live");
    expect(client.state).toMatchObject({ status: "live", traceId: responseTrace(9), sequence: 1 });
    expect(client.lastConnection).toMatchObject({ status: 200, responseTraceId: responseTrace(9), resumeSupported: false });
    client.stop();
  });
});

describe("SSE client stop", () => {
  it("FR-033 stop() aborts the live stream and never reconnects", async () => {
    const { script, client, clock, statuses } = harness();
    const body = new SseBody();
    script.then(() => sseResponse(body));
    const done = client.start();
    await until(() => client.state.status === "live", "live");
    client.stop();
    await done;
    expect(script.calls[0]!.init.signal?.aborted).toBe(true);
    expect(body.cancelled).toBe(true);
    await clock.advance(600_000);
    expect(script.calls).toHaveLength(1);
    expect(statuses().at(-1)).toBe("offline");
    expect(client.state).toMatchObject({ status: "offline", reason: "stopped" });
  });

  it("FR-033 an aborted AbortSignal stops a pending connect and a reconnect wait", async () => {
    const controller = new AbortController();
    const { script, client, clock } = harness({ signal: controller.signal });
    // First connection: no answer yet (pending fetch).
    const done = client.start();
    await until(() => script.calls.length === 1, "fetch");
    controller.abort();
    await done;
    expect(script.calls[0]!.init.signal?.aborted).toBe(true);
    expect(client.state.status).toBe("offline");

    const again = harness();
    again.script.then(networkError);
    const finished = again.client.start();
    await until(() => again.client.state.status === "reconnecting", "waiting");
    again.client.stop();
    await finished;
    await again.clock.advance(60_000);
    expect(again.script.calls).toHaveLength(1);
    expect(again.clock.pending()).toEqual([]);
    void clock;
  });

  it("FR-033 start() right after stop() runs a new loop with the next sequence number", async () => {
    const { script, client } = harness();
    const body = new SseBody();
    script.then(() => sseResponse(body), gracefulStream("retry: 10\n\n"));
    void client.start();
    await until(() => client.state.status === "live", "live");
    client.stop();
    void client.start();
    await until(() => script.calls.length === 2, "second connection");
    expect(script.calls[1]!.headers["x-sse-connection-sequence"]).toBe("2");
    client.stop();
  });

  it("FR-033 reconnectNow() cuts a reconnect wait short", async () => {
    const { script, client } = harness();
    script.then(networkError, networkError, networkError);
    void client.start();
    await until(() => client.state.status === "reconnecting", "wait");
    client.reconnectNow();
    await until(() => script.calls.length === 2, "second attempt");
    client.stop();
  });

  it("FR-032 a throwing message handler does not cost the connection", async () => {
    const errors: unknown[] = [];
    const original = console.error;
    console.error = (...args: unknown[]) => errors.push(args);
    try {
      const { script, client } = harness({
        onMessage: () => {
          throw new Error("render bug");
        },
      });
      const body = new SseBody();
      script.then(() => sseResponse(body));
      void client.start();
      await until(() => client.state.status === "live", "live");
      body.push("id: 1\ndata: a\n\nid: 2\ndata: b\n\n");
      await until(() => client.lastEventId === "2", "both events");
      expect(client.state.status).toBe("live");
      expect(errors).toHaveLength(2);
      client.stop();
    } finally {
      console.error = original;
    }
  });
});
