import { useSubscription } from "@apollo/client/react";
import { useState } from "react";
import { GenerationEventsSubscription } from "../api/operations";
import { STATUS_LABEL } from "../components/format";
import type { EventFieldsFragment } from "../gql/graphql";
import "./EventLog.css";

type Entry = Pick<EventFieldsFragment, "seq" | "kind" | "at" | "status" | "attempt" | "error" | "image">;

function describe(e: Entry): string {
  if (e.kind === "IMAGE" && e.image) return `Image ${e.image.index + 1} saved (${e.image.width}×${e.image.height})`;
  if (e.kind === "DELETED") return "Deleted";
  const status = e.status ? STATUS_LABEL[e.status] : e.kind;
  const attempt = e.attempt && e.attempt > 1 ? ` (attempt ${e.attempt})` : "";
  const error = e.error ? ` — ${e.error.message}${e.error.node ? ` at ${e.error.node}` : ""}` : "";
  return `${status}${attempt}${error}`;
}

/** Every durable event of a generation, replayed from the start (`after: 0`) and then live. */
export function EventLog({ id }: { id: string }) {
  const [entries, setEntries] = useState<Entry[]>([]);
  useSubscription(GenerationEventsSubscription, {
    variables: { id, after: 0 },
    ignoreResults: true,
    onData: ({ data }) => {
      const e = data.data?.generationEvents;
      if (!e || (e.kind !== "STATUS" && e.kind !== "IMAGE" && e.kind !== "DELETED")) return;
      setEntries((list) => (list.some((x) => x.seq === e.seq) ? list : [...list, e].sort((a, b) => a.seq - b.seq)));
    },
  });
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
