import type { Status } from "../gql/graphql";
import { statusLabel, type ProgressView } from "./format";
import "./StatusBadge.css";

/** The status, refined by the phase: "Queued on backend" while ComfyUI queues the prompt, "No backend" while it waits for one. */
export function StatusBadge({ status, progress = null }: { status: Status | null; progress?: ProgressView | null }) {
  const { label, tone } = statusLabel({ status, progress });
  return (
    <span className={`badge badge-${tone}`} data-testid="status-badge" title={label}>
      {label}
    </span>
  );
}
