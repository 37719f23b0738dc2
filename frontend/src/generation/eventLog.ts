import type { EventFieldsFragment } from "../gql/graphql";

/** One line of a generation's event log: a durable event (status change, saved image, deletion). */
export type LogEntry = Pick<EventFieldsFragment, "seq" | "kind" | "at" | "status" | "attempt" | "error" | "image">;

const LOGGED: ReadonlySet<string> = new Set(["STATUS", "IMAGE", "DELETED"]);

/** The log with `event` added in sequence order; progress, previews, snapshots and replays leave it as it is. */
export function addToLog(log: LogEntry[], event: LogEntry): LogEntry[] {
  if (!LOGGED.has(event.kind) || log.some((x) => x.seq === event.seq)) return log;
  return [...log, event].sort((a, b) => a.seq - b.seq);
}
