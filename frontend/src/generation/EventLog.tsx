import { STATUS_LABEL } from "../components/format";
import { kindLabel } from "../results/OutputView";
import type { LogEntry } from "./eventLog";
import "./EventLog.css";

function describe(e: LogEntry): string {
  if (e.kind === "IMAGE" && e.image) {
    const size = e.image.width && e.image.height ? `${e.image.width}×${e.image.height}, ` : "";
    return `${kindLabel(e.image)} ${e.image.index + 1} saved (${size}seed ${e.image.seedValue}, batch ${e.image.batchIndex})`;
  }
  if (e.kind === "DELETED") return "Deleted";
  const status = e.status ? STATUS_LABEL[e.status] : e.kind;
  const attempt = e.attempt && e.attempt > 1 ? ` (attempt ${e.attempt})` : "";
  const error = e.error ? ` — ${e.error.message}${e.error.node ? ` at ${e.error.node}` : ""}` : "";
  return `${status}${attempt}${error}`;
}

/** Every durable event of a generation (useGenerationEvents with `log`: replayed from the start, then live). */
export function EventLog({ entries }: { entries: LogEntry[] }) {
  const start = entries[0]?.at ?? 0;
  return (
    <section className="panel" aria-labelledby="events-title">
      <h2 id="events-title">Events</h2>
      {entries.length === 0 ? (
        <p className="muted">Loading…</p>
      ) : (
        <ol className="event-log" data-testid="event-log">
          {entries.map((e) => (
            <li key={e.seq}>
              <span className="event-time">+{(e.at - start).toFixed(2)} s</span>
              <span className={`event-kind event-${e.kind.toLowerCase()}`}>{describe(e)}</span>
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}
