import type { Phase, ProgressFieldsFragment, Status } from "../gql/graphql";

export const STATUS_LABEL: Record<Status, string> = {
  QUEUED: "Queued",
  RUNNING: "Running",
  CANCELLING: "Cancelling",
  SUCCEEDED: "Done",
  FAILED: "Failed",
  CANCELLED: "Cancelled",
};

export function formatDuration(ms: number | null): string {
  if (ms === null || !Number.isFinite(ms) || ms < 0) return "—";
  const s = Math.round(ms / 100) / 10;
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 60) return `${Math.round(s)} s`;
  const m = Math.floor(s / 60);
  const rest = Math.round(s % 60);
  if (m < 60) return `${m} min ${rest.toString().padStart(2, "0")} s`;
  return `${Math.floor(m / 60)} h ${(m % 60).toString().padStart(2, "0")} min`;
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(0)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

export function formatDate(iso: string | number | null): string {
  if (iso === null) return "—";
  const date = new Date(iso);
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

export function relativeTime(ms: number, now: number): string {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 45) return "just now";
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(ms).toLocaleDateString(undefined, { dateStyle: "medium" });
}

type AnyPhase = Phase;

/** Progress as rendered, stall fields included (reason, next try, deadline). */
export type ProgressView = ProgressFieldsFragment;

type LiveView = { status: Status | null; progress: ProgressView | null };

const PHASE_LABEL: Record<AnyPhase, string> = {
  WAITING: "Queued",
  SUBMITTING: "Submitting to the backend",
  BACKEND_QUEUE: "Waiting on the backend",
  EXECUTING: "Running",
  SAVING: "Saving images",
  RETRY_WAIT: "Waiting to retry",
  BACKEND_WAIT: "Waiting for a backend",
  UNTRACKED: "Running · progress unknown",
  DONE: "Finishing",
};

/** Phases in which nothing moves forward: no time estimate, and the reason and next try are what matter. */
const STALLED: ReadonlySet<AnyPhase> = new Set<AnyPhase>(["RETRY_WAIT", "BACKEND_WAIT"]);

export function isStalled(progress: Pick<ProgressView, "phase"> | null | undefined): boolean {
  return progress != null && STALLED.has(progress.phase);
}

/** WAITING counts a place in Safelight's queue (1 = next); BACKEND_QUEUE counts prompts ahead on the backend. */
export function queueText(phase: AnyPhase, position: number): string {
  const ahead = phase === "WAITING" ? position - 1 : position;
  return ahead <= 0 ? "next up" : `${ahead} ahead`;
}

/** "retry in 12 s" until the next try (unix seconds), "retrying now" once it is due. */
export function countdown(retryAt: number | null | undefined, now: number): string | null {
  if (retryAt == null) return null;
  const seconds = Math.ceil(retryAt - now / 1000);
  return seconds > 0 ? `retry in ${formatDuration(seconds * 1000).replace(".0 s", " s")}` : "retrying now";
}

/** One line saying what a generation is doing now: phase, queue position or node and step, next try. */
export function describePhase(live: LiveView, now: number = Date.now()): string {
  const { status, progress } = live;
  if (status === null) return "Connecting…";
  if (status === "SUCCEEDED" || status === "FAILED" || status === "CANCELLED") return STATUS_LABEL[status];
  if (status === "CANCELLING") return "Cancelling…";
  if (!progress) return status === "QUEUED" ? "Queued" : "Starting";
  const parts = [PHASE_LABEL[progress.phase] ?? progress.phase];
  if ((progress.phase === "WAITING" || progress.phase === "BACKEND_QUEUE") && progress.queuePosition != null) {
    parts.push(queueText(progress.phase, progress.queuePosition));
  }
  if (progress.phase === "EXECUTING") {
    const node = progress.nodeClass ?? progress.node;
    if (node) parts.push(node);
    if (progress.step != null && progress.maxSteps) parts.push(`step ${progress.step} of ${progress.maxSteps}`);
  }
  if (STALLED.has(progress.phase)) {
    const next = countdown(progress.retryAt, now);
    if (next) parts.push(next);
  }
  return parts.join(" · ");
}

/**
 * What the status badge says. RUNNING covers the whole time a job holds a backend, but a prompt
 * that waits in ComfyUI's own queue is not running yet, and one whose backend is gone is stalled.
 */
export function statusLabel(live: LiveView): { label: string; tone: string } {
  const { status, progress } = live;
  if (status === null) return { label: "…", tone: "pending" };
  const phase = progress?.phase;
  if (status === "RUNNING" || status === "QUEUED") {
    if (phase === "BACKEND_WAIT") return { label: "No backend", tone: "stalled" };
    if (phase === "RETRY_WAIT") return { label: "Retrying", tone: "stalled" };
  }
  if (status === "RUNNING" && phase === "BACKEND_QUEUE") return { label: "Queued on backend", tone: "queued" };
  if (status === "RUNNING" && phase === "SUBMITTING") return { label: "Submitting", tone: "queued" };
  return { label: STATUS_LABEL[status], tone: status.toLowerCase() };
}

/**
 * Percent shown. A retry pending (RETRY_WAIT) is a new attempt that hasn't started, so 0, whatever
 * the previous attempt reached: the same after a reload (the record) as live (the events).
 */
export function percentOf(live: LiveView): number {
  if (live.status === "SUCCEEDED") return 100;
  if (live.progress?.phase === "RETRY_WAIT") return 0;
  const p = live.progress?.percent ?? 0;
  return Math.max(0, Math.min(100, p));
}

/** Remaining time from the running rate so far; null until there is something to go on. */
export function estimateRemaining(percent: number, runningMs: number | null): number | null {
  if (runningMs === null || percent < 3 || percent >= 100) return null;
  return (runningMs * (100 - percent)) / percent;
}

/**
 * A backend's error as a person reads it. The API reports what the HTTP client raised, e.g.
 * `ConnectError(ConnectionRefusedError(111, 'Connection refused'))`; say what it means instead.
 */
export function readableBackendError(raw: string): string {
  const text = raw.trim();
  const rules: [RegExp, string][] = [
    [/refused/i, "Connection refused: nothing is listening at this address. Is ComfyUI running?"],
    [/name or service not known|nodename nor servname|getaddrinfo|Temporary failure in name resolution|NXDOMAIN/i,
      "The host name does not resolve."],
    [/ConnectTimeout|connect timeout/i, "Timed out connecting: the host does not answer."],
    [/ReadTimeout|WriteTimeout|PoolTimeout|timed? ?out/i, "Timed out waiting for an answer."],
    [/RemoteProtocolError|Server disconnected|ReadError|connection reset|broken pipe/i,
      "The connection was closed before ComfyUI answered."],
    [/SSL|certificate/i, "The TLS connection failed (certificate or protocol)."],
    [/No route to host|Network is unreachable|EHOSTUNREACH|ENETUNREACH/i, "The host is unreachable from here."],
    [/ConnectError/i, "Could not connect to the backend."],
  ];
  for (const [pattern, message] of rules) if (pattern.test(text)) return message;
  const status = /\b([45]\d\d)\b/.exec(text);
  if (status) return `ComfyUI answered HTTP ${status[1]}.`;
  // Unknown: strip a Python exception wrapper such as `SomeError('message')` down to its message.
  const wrapped = /^[A-Za-z_.]+\((['"])(.*)\1\)$/.exec(text);
  return wrapped?.[2] ?? text;
}
