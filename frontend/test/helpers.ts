/** Test doubles: a manual clock, a scripted fetch, and SSE bodies the test writes to. */
import type { Clock } from "../src/sse";
import type { TraceIdSource } from "../src/trace";

/** Let promise chains and stream reads settle (a macrotask runs after every queued microtask). */
export async function settle(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i += 1) await new Promise<void>((resolve) => setImmediate(resolve));
}

/** Settle until `condition` holds; fail loudly instead of hanging. */
export async function until(condition: () => boolean, what = "condition"): Promise<void> {
  for (let i = 0; i < 200; i += 1) {
    if (condition()) return;
    await settle(1);
  }
  throw new Error(`timed out waiting for ${what}`);
}

interface Timer {
  id: number;
  at: number;
  callback: () => void;
}

/** A clock that moves only when the test says so. */
export class ManualClock implements Clock {
  time: number;
  private timers: Timer[] = [];
  private nextId = 1;

  constructor(start = Date.UTC(2026, 10, 25, 8, 0, 0)) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  setTimeout(callback: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.push({ id, at: this.time + Math.max(0, ms), callback });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.timers = this.timers.filter((timer) => timer.id !== handle);
  }

  /** Delays (from now) of the timers still pending. */
  pending(): number[] {
    return this.timers.map((timer) => timer.at - this.time).sort((a, b) => a - b);
  }

  /** Move time forward, firing due timers in order and letting the code react after each. */
  async advance(ms: number): Promise<void> {
    const target = this.time + ms;
    for (;;) {
      await settle();
      const due = this.timers.filter((timer) => timer.at <= target).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.timers = this.timers.filter((timer) => timer !== due);
      this.time = due.at;
      due.callback();
    }
    this.time = target;
    await settle();
  }
}

/** Deterministic ids: counting bytes, so every id differs and the test can predict the epoch. */
export function countingIds(clock: { now(): number }): TraceIdSource {
  let counter = 0;
  return {
    now: () => clock.now(),
    randomBytes: (length) => {
      const bytes = new Uint8Array(length);
      counter += 1;
      let value = counter;
      for (let i = length - 1; i >= 0 && value > 0; i -= 1) {
        bytes[i] = value & 0xff;
        value = Math.floor(value / 256);
      }
      bytes[0] = 0xab; // never all zeros
      return bytes;
    },
  };
}

/** A response body the test feeds chunk by chunk. */
export class SseBody {
  readonly stream: ReadableStream<Uint8Array>;
  cancelled = false;
  private controller!: ReadableStreamDefaultController<Uint8Array>;
  private readonly encoder = new TextEncoder();

  constructor() {
    this.stream = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.controller = controller;
      },
      cancel: () => {
        this.cancelled = true;
      },
    });
  }

  push(text: string): void {
    this.controller.enqueue(this.encoder.encode(text));
  }

  close(): void {
    this.controller.close();
  }

  fail(error: unknown = new TypeError("network error")): void {
    this.controller.error(error);
  }
}

export function sseResponse(body: SseBody, headers: Record<string, string> = {}): Response {
  return new Response(body.stream, {
    status: 200,
    headers: { "Content-Type": "text/event-stream", ...headers },
  });
}

export interface RecordedCall {
  url: string;
  init: RequestInit;
  headers: Record<string, string>;
}

type Responder = (call: RecordedCall) => Response | Promise<Response>;

/**
 * A fetch that answers each call with the next scripted responder. A call with no responder
 * left stays pending until its signal aborts (like a real fetch to a silent server).
 */
export class ScriptedFetch {
  readonly calls: RecordedCall[] = [];
  private readonly script: Responder[] = [];

  then(...responders: Responder[]): this {
    this.script.push(...responders);
    return this;
  }

  readonly fetch = (input: string, init: RequestInit = {}): Promise<Response> => {
    const headers: Record<string, string> = {};
    new Headers(init.headers).forEach((value, key) => {
      headers[key.toLowerCase()] = value;
    });
    const call: RecordedCall = { url: input, init, headers };
    this.calls.push(call);
    const responder = this.script.shift();
    const signal = init.signal;
    return new Promise<Response>((resolve, reject) => {
      const abort = () => reject(new DOMException("The operation was aborted.", "AbortError"));
      if (signal?.aborted) return abort();
      signal?.addEventListener("abort", abort, { once: true });
      if (!responder) return;
      Promise.resolve()
        .then(() => responder(call))
        .then(resolve, reject);
    });
  };
}

export const networkError: Responder = () => {
  throw new TypeError("Failed to fetch");
};
