/**
 * The devstack's trace view (`trace.html?id=<trace id>`): the trace as the local X-Ray API returns
 * it (the gateway's `devstack/traces/<id>`, read with BatchGetTraces), drawn as a timeline: one row
 * per segment, subsegment and OTel span, indented by depth, with durations; faults, errors and
 * throttles marked; annotations on hover. Plain DOM, text set with textContent only.
 */
import "./style.css";
import { TRACE_ID_PATTERN } from "./trace";
import { formatDuration, layoutTrace } from "./trace-tree";
import type { TraceDocument, TraceLayout, TraceRow } from "./trace-tree";

function el<K extends keyof HTMLElementTagNameMap>(tag: K, className = "", text = ""): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  if (className) element.className = className;
  if (text) element.textContent = text;
  return element;
}

function annotationText(row: TraceRow): string {
  const lines = Object.entries(row.annotations).map(([key, value]) => `${key} = ${String(value)}`);
  if (row.cause) lines.push(`cause: ${row.cause}`);
  return lines.join("\n");
}

function renderRow(row: TraceRow): HTMLElement {
  const flags = (["fault", "error", "throttle"] as const).filter((flag) => row[flag]);
  const item = el("li", ["trace-row", row.kind, ...flags].join(" "));
  Object.assign(item.dataset, {
    testid: "trace-row",
    id: row.id,
    parentId: row.parentId ?? "",
    depth: String(row.depth),
    name: row.name,
    origin: row.origin ?? "",
    kind: row.kind,
    flags: flags.join(","),
  });
  const label = el("div", "trace-label");
  label.style.paddingLeft = `${Math.min(row.depth, 24) * 12}px`;
  label.append(el("span", "trace-name", row.name));
  const kind = row.origin ?? (row.kind === "span" ? "OTel span" : row.namespace);
  if (kind) label.append(el("span", "trace-origin", kind));
  for (const flag of flags) label.append(el("span", `trace-flag ${flag}`, flag.toUpperCase()));
  if (row.inProgress) label.append(el("span", "trace-flag in-progress", "IN PROGRESS"));

  const lane = el("div", "trace-lane");
  const track = el("div", "trace-track");
  const bar = el("span", "trace-bar");
  bar.style.left = `${row.offsetPct}%`;
  bar.style.width = `${row.widthPct}%`;
  track.append(bar);
  lane.append(track, el("span", "trace-duration", formatDuration(row.durationMs)));
  item.append(label, lane);

  const annotations = annotationText(row);
  if (annotations) {
    item.title = annotations; // the browser's own tooltip: annotations on hover
    item.dataset.annotations = JSON.stringify(row.annotations);
    label.append(el("span", "trace-annotated", `${Object.keys(row.annotations).length} annotations`));
  }
  return item;
}

function render(root: HTMLElement, layout: TraceLayout, reload: () => void): void {
  const faults = layout.rows.filter((r) => r.fault).length;
  const errors = layout.rows.filter((r) => r.error).length;
  const refresh = el("button", "button", "Reload");
  refresh.type = "button";
  refresh.addEventListener("click", reload);
  const head = el("header", "topbar");
  const title = el("h1", "", "Trace ");
  title.append(el("code", "trace-id", layout.traceId));
  head.append(title, refresh);
  const summary = el(
    "p",
    "trace-summary",
    `${formatDuration(layout.durationMs)} · ${layout.rows.length} documents · ${faults} fault · ${errors} error` +
      (layout.orphans ? ` · ${layout.orphans} without their parent in this trace` : ""),
  );
  summary.dataset.testid = "trace-summary";
  const list = el("ol", "trace-rows");
  list.dataset.testid = "trace-tree";
  list.append(...layout.rows.map(renderRow));
  const panel = el("section", "panel");
  panel.append(summary, list);
  root.replaceChildren(head, panel);
}

function showProblem(root: HTMLElement, message: string): void {
  const banner = el("div", "banner", message);
  banner.dataset.testid = "trace-error";
  banner.setAttribute("role", "alert");
  root.replaceChildren(el("h1", "", "Trace"), banner);
}

async function load(root: HTMLElement, traceId: string): Promise<void> {
  const response = await fetch(`devstack/traces/${traceId}`, { headers: { Accept: "application/json" } });
  const body = (await response.json()) as { trace_id?: string; documents?: TraceDocument[]; message?: string };
  if (!response.ok || !body.documents) {
    showProblem(root, body.message ?? `HTTP ${response.status} for trace ${traceId}`);
    return;
  }
  render(root, layoutTrace(traceId, body.documents), () => void load(root, traceId));
}

const root = document.getElementById("trace");
if (!root) throw new Error("#trace is missing from trace.html");
const traceId = new URLSearchParams(location.search).get("id") ?? "";
if (!TRACE_ID_PATTERN.test(traceId)) showProblem(root, `"${traceId}" is not an X-Ray trace id (1-<8 hex>-<24 hex>)`);
else {
  document.title = `Trace ${traceId} · Sentiment analyzer`;
  load(root, traceId).catch((error: unknown) => showProblem(root, `could not read the trace: ${String(error)}`));
}
