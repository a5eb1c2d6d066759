/** Entry point: wire the API client, the SSE client and the dashboard together. */
import "./style.css";
import { ApiClient } from "./api";
import { signIn } from "./auth";
import { uplotChart } from "./chart";
import { Dashboard } from "./dashboard";
import { SseClient, randomSessionId } from "./sse";
import { loadPageConfig, traceUrl } from "./trace-links";

/** Same origin by default (relative URLs); `VITE_API_BASE_URL` at build time points elsewhere. */
const baseUrl = (import.meta.env.VITE_API_BASE_URL ?? "").replace(/\/+$/, "");

/** One session id per tab, kept across reloads of that tab (FR-048). */
function tabSessionId(): string {
  const key = "sentiment-analyzer.sse-session-id";
  try {
    const existing = sessionStorage.getItem(key);
    if (existing) return existing;
    const id = randomSessionId();
    sessionStorage.setItem(key, id);
    return id;
  } catch {
    return randomSessionId(); // storage disabled: stable for this page's life only
  }
}

const root = document.getElementById("app");
if (!root) throw new Error("#app is missing from index.html");

// Where trace ids link to (the CloudWatch console, or the devstack's trace view): config.json, served
// beside this page. Without it the page still works, with trace ids as plain text and the reason shown.
let configProblem: unknown = null;
const config = await loadPageConfig().catch((error: unknown) => {
  configProblem = error;
  return null;
});

const api = new ApiClient({ baseUrl });
const dashboard = new Dashboard({
  root,
  api,
  chart: uplotChart,
  traceLink: config ? (traceId) => traceUrl(config.traceLinks, traceId) : undefined,
  signIn: config?.auth ? (username, password) => signIn(config.auth!, username, password) : undefined,
  createStream: (callbacks) =>
    new SseClient({
      url: `${baseUrl}/api/v2/stream`,
      sessionId: tabSessionId(),
      // The server sends a heartbeat at a fixed interval: silence this long means a dead link.
      idleTimeoutMs: 90_000,
      ...callbacks,
    }),
});

// Back online: reload the panels and cut a pending reconnect wait short.
window.addEventListener("online", () => void dashboard.refresh());
void dashboard.start().then(() => {
  if (configProblem !== null) dashboard.reportProblem(configProblem);
});
