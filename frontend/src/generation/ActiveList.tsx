import { useQuery, useSubscription } from "@apollo/client/react";
import { useEffect, useRef, useState } from "react";
import { ActiveGenerationEventsSubscription, GenerationsQuery } from "../api/operations";
import type { ProgressView } from "../components/format";
import { StatusBadge } from "../components/StatusBadge";
import type { Status } from "../gql/graphql";
import "./ActiveList.css";

export const ACTIVE_STATUSES: Status[] = ["QUEUED", "RUNNING", "CANCELLING"];

interface Seen {
  status: Status | null;
  progress: ProgressView | null;
  ended: boolean;
}

/**
 * All my queued and running generations, not only the one on the live panel: the `generations`
 * query for those statuses, kept live by `myGenerationEvents` (progress and status in place; a
 * generation made elsewhere, in another tab or by a retry, brings a refetch; an ended one leaves).
 */
export function ActiveList({
  current,
  onSelect,
  refetchDelayMs = 250,
}: {
  current: string | null;
  onSelect: (id: string) => void;
  refetchDelayMs?: number;
}) {
  const { data, refetch } = useQuery(GenerationsQuery, {
    variables: { first: 50, after: null, status: ACTIVE_STATUSES, search: null },
    fetchPolicy: "cache-and-network",
  });
  const [seen, setSeen] = useState<Record<string, Seen>>({});
  const timer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  const nodes = data?.generations.edges.map((e) => e.node) ?? [];
  const known = new Set(nodes.map((n) => n.id));

  useEffect(() => () => clearTimeout(timer.current), []);
  const refetchSoon = () => {
    clearTimeout(timer.current);
    timer.current = setTimeout(() => void refetch().catch(() => {}), refetchDelayMs);
  };

  useSubscription(ActiveGenerationEventsSubscription, {
    ignoreResults: true,
    onData: ({ data: message }) => {
      const e = message.data?.myGenerationEvents;
      if (!e) return;
      setSeen((all) => {
        const before = all[e.generationId] ?? { status: null, progress: null, ended: false };
        return {
          ...all,
          [e.generationId]: {
            status: e.status ?? before.status,
            progress: e.progress ?? before.progress,
            ended: before.ended || e.terminal || e.kind === "DELETED",
          },
        };
      });
      const durable = e.kind === "STATUS" || e.kind === "SNAPSHOT" || e.kind === "DELETED";
      if (durable && (e.terminal || !known.has(e.generationId))) refetchSoon();
    },
  });

  const active = nodes
    .filter((n) => !seen[n.id]?.ended)
    .sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  // Nothing waiting: no strip at all (the live panel says what there is to say).
  if (active.length === 0) return null;
  return (
    <section className="active-list" aria-labelledby="active-title" data-testid="active-list">
      <h2 id="active-title" className="active-title">
        Queued and running{" "}
        <span className="active-count" aria-label={`${active.length} active`}>
          {active.length}
        </span>
      </h2>
      <ol className="active-items">
        {active.map((g) => {
          const live = seen[g.id];
          const status = live?.status ?? g.status;
          const progress = live?.progress ?? g.progress;
          const percent = Math.max(0, Math.min(100, Math.round(progress?.percent ?? 0)));
          return (
            <li key={g.id} data-testid="active-item" data-id={g.id}>
              <button
                type="button"
                className="active-item"
                aria-current={g.id === current ? "true" : undefined}
                onClick={() => onSelect(g.id)}
                title={`${g.prompt || g.template} (${g.template}): show on the live panel`}
              >
                <span className="active-prompt">{g.prompt || g.template}</span>
                <StatusBadge status={status} progress={progress} />
                <span className="active-bar" aria-hidden="true">
                  <span style={{ width: `${percent}%` }} />
                </span>
              </button>
            </li>
          );
        })}
      </ol>
    </section>
  );
}
