import type { LiveGeneration } from "../generation/reducer";
import { describePhase, estimateRemaining, formatDuration, percentOf } from "./format";
import { useNow } from "./useNow";

/** Phase line, bar, elapsed time and an estimate of what's left. */
export function ProgressBar({ live, compact = false }: { live: LiveGeneration; compact?: boolean }) {
  const now = useNow(!live.terminal);
  const percent = percentOf(live);
  const from = live.createdAt;
  const end = live.terminal ? (live.finishedAt ?? now) : now;
  const elapsed = from === null ? null : end - from;
  const running = live.startedAt === null ? null : end - live.startedAt;
  const remaining = live.terminal ? null : estimateRemaining(percent, running);
  const phase = describePhase(live);
  const tone = live.status === "FAILED" ? "failed" : live.status === "CANCELLED" ? "cancelled" : "active";
  return (
    <div className={`progress progress-${tone}${compact ? " progress-compact" : ""}`}>
      <div className="progress-line">
        <span className="progress-phase" data-testid="phase">
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
