/**
 * Where a trace id links to, from the configuration the page is served with (`config.json` beside
 * index.html): Terraform writes it to the frontend bucket (deployed), the devstack gateway serves it
 * (local).
 *
 * - `{"traceLinks": {"kind": "cloudwatch", "region": "eu-west-1"}}`: the trace's page in the
 *   CloudWatch console (X-Ray traces) of that region.
 * - `{"traceLinks": {"kind": "local", "view": "trace.html"}}`: the devstack's trace view page.
 *
 * Example:
 *   traceUrl({ kind: "cloudwatch", region: "eu-west-1" }, "1-5759e988-bd862e3fe1be46a994272793")
 *   // "https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1#xray:traces/1-5759e988-bd862e3fe1be46a994272793"
 */
import { type AuthConfig, parseAuthConfig } from "./auth";
import { TRACE_ID_PATTERN } from "./trace";

export type TraceLinkConfig = { kind: "cloudwatch"; region: string } | { kind: "local"; view: string };

export interface PageConfig {
  traceLinks: TraceLinkConfig;
  auth: AuthConfig | null; // where to sign in (alert rules belong to a signed-in user)
}

/** config.json is missing, unreadable or says something this page does not understand. */
export class PageConfigError extends Error {
  override readonly name = "PageConfigError";
}

// Commercial-partition region names (us-east-1, ap-southeast-2, ...). Other partitions have other
// console hosts (console.amazonaws.cn, ...): refused, rather than linking to a console that cannot hold the trace.
const REGION_PATTERN = /^(?:us|eu|ap|sa|ca|me|af|il|mx)-[a-z]+-\d{1,2}$/;
// A page of this site: a relative path of plain segments, nothing that could leave the origin.
const VIEW_PATTERN = /^[A-Za-z0-9_-]+(?:\/[A-Za-z0-9_-]+)*\.html$/;

export function parsePageConfig(value: unknown): PageConfig {
  const auth = parseAuthConfig((value as { auth?: unknown } | null)?.auth);
  return { traceLinks: parseTraceLinks(value), auth };
}

function parseTraceLinks(value: unknown): TraceLinkConfig {
  const links = (value as { traceLinks?: unknown } | null)?.traceLinks as Record<string, unknown> | undefined;
  if (!links || typeof links !== "object") throw new PageConfigError("config.json: traceLinks is missing");
  if (links.kind === "cloudwatch") {
    if (typeof links.region !== "string" || !REGION_PATTERN.test(links.region))
      throw new PageConfigError(`config.json: ${JSON.stringify(links.region)} is not an AWS region of the aws partition`);
    return { kind: "cloudwatch", region: links.region };
  }
  if (links.kind === "local") {
    if (typeof links.view !== "string" || !VIEW_PATTERN.test(links.view))
      throw new PageConfigError(`config.json: ${JSON.stringify(links.view)} is not a page of this site`);
    return { kind: "local", view: links.view };
  }
  throw new PageConfigError(`config.json: unknown traceLinks.kind ${JSON.stringify(links.kind)}`);
}

/**
 * The URL of one trace. A trace id is checked first: it ends up in a link a person clicks.
 *
 * CloudWatch: the console deep link is `/<service>/home?region=<region>#<route>` (the region goes in the
 * query, before the fragment): https://docs.aws.amazon.com/xray/latest/devguide/xray-console-deeplinks.html
 * X-Ray traces live in the CloudWatch console (https://docs.aws.amazon.com/xray/latest/devguide/xray-console-traces.html),
 * whose trace page route is `#xray:traces/<trace-id>` (as used in
 * https://github.com/getsentry/sentry-javascript/issues/8339); the region-prefixed host skips a redirect.
 */
export function traceUrl(config: TraceLinkConfig, traceId: string): string {
  if (!TRACE_ID_PATTERN.test(traceId)) throw new PageConfigError(`${JSON.stringify(traceId)} is not an X-Ray trace id`);
  if (config.kind === "cloudwatch") {
    const { region } = config;
    return `https://${region}.console.aws.amazon.com/cloudwatch/home?region=${region}#xray:traces/${traceId}`;
  }
  return `${config.view}?id=${traceId}`;
}

/** Fetch and check `config.json` (relative to the page, so a sub-path deployment works too). */
export async function loadPageConfig(
  fetchImpl: (input: string, init?: RequestInit) => Promise<Response> = (input, init) => globalThis.fetch(input, init),
  url = "config.json",
): Promise<PageConfig> {
  const response = await fetchImpl(url, { headers: { Accept: "application/json" }, cache: "no-cache" });
  if (!response.ok) throw new PageConfigError(`${url}: HTTP ${response.status}`);
  let body: unknown;
  try {
    body = await response.json();
  } catch (error) {
    throw new PageConfigError(`${url}: not JSON (${String(error)})`);
  }
  return parsePageConfig(body);
}
