/** Small display helpers (pure, tested). */
import type { ConnectionState } from "./sse";

export type ConnectionLabel = "connecting" | "live" | "reconnecting" | "offline";

/** The connection-state pill: a stable state word plus the text a person reads. */
export function connectionLabel(state: ConnectionState, now: number): { state: ConnectionLabel; text: string } {
  switch (state.status) {
    case "idle":
    case "connecting":
      return { state: "connecting", text: "connecting" };
    case "live":
      return { state: "live", text: "live" };
    case "reconnecting": {
      const seconds = Math.max(0, Math.ceil((state.retryAt - now) / 1000));
      return { state: "reconnecting", text: `reconnecting in ${seconds} s` };
    }
    case "offline":
      return { state: "offline", text: "offline" };
  }
}

/** A score with its sign, two decimals: +0.42, -0.10, 0.00. */
export function formatScore(score: number): string {
  const fixed = score.toFixed(2);
  return score > 0 && fixed !== "0.00" ? `+${fixed}` : fixed === "-0.00" ? "0.00" : fixed;
}

/** "just now", "42 s ago", "5 min ago", "3 h ago", "2 d ago". */
export function timeAgo(iso: string, now: number): string {
  const then = Date.parse(iso);
  if (Number.isNaN(then)) return "";
  const seconds = Math.max(0, Math.round((now - then) / 1000));
  if (seconds < 5) return "just now";
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86_400)} d ago`;
}

export function clockTime(iso: string): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}
