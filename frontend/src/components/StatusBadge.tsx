import type { Status } from "../gql/graphql";
import { STATUS_LABEL } from "./format";

export function StatusBadge({ status }: { status: Status | null }) {
  if (!status) return <span className="badge badge-pending">…</span>;
  return <span className={`badge badge-${status.toLowerCase()}`}>{STATUS_LABEL[status]}</span>;
}
