import type { Phase, Status } from "../gql/graphql";
import type { LiveGeneration } from "../generation/reducer";

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

const PHASE_LABEL: Record<Phase, string> = {
  WAITING: "Queued",
  SUBMITTING: "Submitting to the backend",
  BACKEND_QUEUE: "Waiting on the backend",
  EXECUTING: "Running",
  SAVING: "Saving images",
  RETRY_WAIT: "Waiting to retry",
  DONE: "Finishing",
};

/** WAITING counts a place in Safelight's queue (1 = next); BACKEND_QUEUE counts prompts ahead on the backend. */
function queueText(phase: Phase, position: number): string {
  const ahead = phase === "WAITING" ? position - 1 : position;
  return ahead <= 0 ? "next up" : `${ahead} ahead`;
}

/** One line saying what a generation is doing now: phase, queue position or node and step. */
export function describePhase(live: Pick<LiveGeneration, "status" | "progress">): string {
  const { status, progress } = live;
  if (status === null) return "Connecting…";
  if (status === "SUCCEEDED" || status === "FAILED" || status === "CANCELLED") return STATUS_LABEL[status];
  if (status === "CANCELLING") return "Cancelling…";
  if (!progress) return status === "QUEUED" ? "Queued" : "Starting";
  const parts = [PHASE_LABEL[progress.phase]];
  if ((progress.phase === "WAITING" || progress.phase === "BACKEND_QUEUE") && progress.queuePosition != null) {
    parts.push(queueText(progress.phase, progress.queuePosition));
  }
  if (progress.phase === "EXECUTING") {
    const node = progress.nodeClass ?? progress.node;
    if (node) parts.push(node);
    if (progress.step != null && progress.maxSteps) parts.push(`step ${progress.step} of ${progress.maxSteps}`);
  }
  return parts.join(" · ");
}

export function percentOf(live: Pick<LiveGeneration, "status" | "progress">): number {
  if (live.status === "SUCCEEDED") return 100;
  const p = live.progress?.percent ?? 0;
  return Math.max(0, Math.min(100, p));
}

/** Remaining time from the running rate so far; null until there is something to go on. */
export function estimateRemaining(percent: number, runningMs: number | null): number | null {
  if (runningMs === null || percent < 3 || percent >= 100) return null;
  return (runningMs * (100 - percent)) / percent;
}
