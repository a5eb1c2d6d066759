import { describe, expect, it } from "vitest";
import { PageConfigError, loadPageConfig, parsePageConfig, traceUrl } from "../src/trace-links";

const TRACE = "1-6925e2a0-0123456789abcdef01234567";

describe("trace links (FR-010: the X-Ray trace id is the correlation id, and it opens its trace)", () => {
  it("FR-010 deployed: the CloudWatch console's X-Ray trace page of the stack's region", () => {
    const { traceLinks } = parsePageConfig({ traceLinks: { kind: "cloudwatch", region: "eu-west-1" } });
    expect(traceUrl(traceLinks, TRACE)).toBe(
      `https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1#xray:traces/${TRACE}`,
    );
  });

  it("FR-010 local: the devstack's trace view page, relative to the dashboard", () => {
    const { traceLinks } = parsePageConfig({ traceLinks: { kind: "local", view: "trace.html" } });
    expect(traceUrl(traceLinks, TRACE)).toBe(`trace.html?id=${TRACE}`);
  });

  it("FR-010 refuses what is not a trace id: nothing else ends up in a link", () => {
    const config = { kind: "cloudwatch", region: "us-east-1" } as const;
    for (const bad of ["", "javascript:alert(1)", `${TRACE}#x`, "1-6925e2a0-0123", TRACE.toUpperCase()])
      expect(() => traceUrl(config, bad)).toThrow(PageConfigError);
  });

  it("FR-010 a config.json the page does not understand is a clear error, never a guess", () => {
    const bad: unknown[] = [
      null,
      {},
      { traceLinks: { kind: "xray" } },
      { traceLinks: { kind: "cloudwatch" } },
      { traceLinks: { kind: "cloudwatch", region: "eu-west-1#evil" } },
      { traceLinks: { kind: "cloudwatch", region: "cn-north-1" } }, // another partition, another console
      { traceLinks: { kind: "local", view: "https://evil.example/trace.html" } },
      { traceLinks: { kind: "local", view: "../trace.html" } },
    ];
    for (const value of bad) expect(() => parsePageConfig(value), JSON.stringify(value)).toThrow(PageConfigError);
  });

  it("FR-010 config.json is read beside the page; a 404 or non-JSON body says so", async () => {
    const asked: string[] = [];
    const serve = (body: string, status = 200) => async (input: string) => {
      asked.push(input);
      return new Response(body, { status, headers: { "Content-Type": "application/json" } });
    };
    const config = await loadPageConfig(serve(JSON.stringify({ traceLinks: { kind: "local", view: "trace.html" } })));
    expect(config.traceLinks).toEqual({ kind: "local", view: "trace.html" });
    expect(asked).toEqual(["config.json"]);
    await expect(loadPageConfig(serve("not found", 404))).rejects.toThrow("config.json: HTTP 404");
    await expect(loadPageConfig(serve("<html>"))).rejects.toThrow(/not JSON/);
  });
});
