import type { LiveGeneration } from "../generation/reducer";
import {
  countdown,
  describePhase,
  queueText,
  estimateRemaining,
  formatDuration,
  isStalled,
  percentOf,
  type ProgressView,
} from "./format";
import { useNow } from "./useNow";
import "./ProgressBar.css";

/**
 * Phase line, bar, elapsed time and an estimate of what's left. While the backend is stalled
 * (waiting to retry, or for a backend to come back) the phase counts down to the next try, the
 * reason shows under it, and there is no estimate (it would only grow).
 */
export function ProgressBar({ live, compact = false }: { live: LiveGeneration; compact?: boolean }) {
  const now = useNow(!live.terminal);
  const percent = percentOf(live);
  const from = live.createdAt;
  const end = live.terminal ? (live.finishedAt ?? now) : now;
  const elapsed = from === null ? null : end - from;
  const running = live.startedAt === null ? null : end - live.startedAt;
  const stalled = !live.terminal && isStalled(live.progress);
  const progress: ProgressView | null = live.progress;
  const untracked = progress?.phase === "UNTRACKED";
  const remaining = live.terminal || stalled || untracked ? null : estimateRemaining(percent, running);
  // A card is narrow and its badge already says what it waits for: lead with when the next try is,
  // or how many prompts are ahead in the backend's queue.
  const backendQueue = progress?.phase === "BACKEND_QUEUE" && progress.queuePosition != null && live.status === "RUNNING";
  const next = !compact
    ? null
    : stalled
      ? countdown(progress?.retryAt, now)
      : backendQueue
        ? queueText("BACKEND_QUEUE", progress.queuePosition ?? 0)
        : null;
  const phase = next ? next.charAt(0).toUpperCase() + next.slice(1) : describePhase(live, now);
  const reason = live.terminal ? null : stallReason(live, now);
  const tone = live.status === "FAILED" ? "failed" : live.status === "CANCELLED" ? "cancelled" : stalled ? "stalled" : "active";
  return (
    <div className={`progress progress-${tone}${compact ? " progress-compact" : ""}`}>
      <div className="progress-line">
        <span className="progress-phase" data-testid="phase" title={phase}>
          {phase}
        </span>
        <span className="progress-percent">{Math.round(percent)}%</span>
      </div>
      <div
        className="progress-track"
        role="progressbar"
        aria-label="Generation progress"
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={Math.round(percent)}
        aria-valuetext={`${Math.round(percent)}% — ${phase}`}
      >
        <div className="progress-fill" style={{ width: `${percent}%` }} />
      </div>
      {reason && (
        <p className="progress-reason" data-testid="stall-reason" title={reason}>
          {reason}
        </p>
      )}
      {!compact && (
        <div className="progress-times">
          <span>
            Elapsed <strong data-testid="elapsed">{formatDuration(elapsed)}</strong>
          </span>
          {remaining !== null && (
            <span>
              About <strong>{formatDuration(remaining)}</strong> left
            </span>
          )}
        </div>
      )}
    </div>
  );
}

/**
 * Why a live generation is not moving: the progress's reason (with when waiting for a backend gives
 * up), else the error that caused a retry.
 */
export function stallReason(live: Pick<LiveGeneration, "progress" | "error" | "status">, now = Date.now()): string | null {
  const progress: ProgressView | null = live.progress;
  if (progress?.reason) {
    const left = progress.phase === "BACKEND_WAIT" && progress.deadlineAt != null ? progress.deadlineAt * 1000 - now : null;
    const reason = progress.reason.replace(/\.$/, "");
    return left !== null && left > 0 ? `${reason}. Gives up in ${formatDuration(left)}.` : progress.reason;
  }
  if (progress?.phase === "RETRY_WAIT" && live.error) return `Retrying after: ${live.error.message}`;
  if (progress?.phase === "UNTRACKED") return "The backend runs it, but its live progress can't be followed; the result is checked when it ends.";
  return null;
}
