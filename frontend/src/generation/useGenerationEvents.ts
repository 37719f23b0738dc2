import { useApolloClient, useSubscription } from "@apollo/client/react";
import { useReducer, useState } from "react";
import { GenerationEventsSubscription, GenerationQuery } from "../api/operations";
import type { GenerationFieldsFragment } from "../gql/graphql";
import { addToLog, type LogEntry } from "./eventLog";
import { applyEvent, initialGeneration, isTerminal, type LiveGeneration } from "./reducer";

/**
 * Follow one generation live, over one subscription. Without a seed it starts from the server's
 * SNAPSHOT; with a seed (a record already loaded) it asks only for what happened after the seed's
 * `lastSeq`. With `log`, it asks for every durable event from the start (`after: 0`), even of a
 * finished generation, and also returns them as the event log: the replayed events the seed already
 * holds change nothing in `live`. Reconnects resume from the last sequence number seen (see
 * ResumableWsLink). Key the caller by `id`.
 *
 * When the generation ends, its full record is fetched once so every view of it (lists, detail)
 * shows the final state from the cache.
 */
export function useGenerationEvents(
  id: string,
  seed?: GenerationFieldsFragment | null,
  { log: withLog = false }: { log?: boolean } = {},
): { live: LiveGeneration; log: LogEntry[]; error: Error | undefined } {
  const client = useApolloClient();
  const [live, dispatch] = useReducer(applyEvent, undefined, () => initialGeneration(id, seed));
  const [log, setLog] = useState<LogEntry[]>([]);
  const [after] = useState(() => (withLog ? 0 : seed ? seed.lastSeq : null));
  const [skip] = useState(() => !withLog && Boolean(seed && isTerminal(seed.status)));
  // The end the seed already shows (a replayed terminal event) needs no fetch.
  const [known] = useState(() => seed?.lastSeq ?? -1);
  const { error } = useSubscription(GenerationEventsSubscription, {
    variables: { id, after },
    skip,
    ignoreResults: true,
    onData: ({ data }) => {
      const event = data.data?.generationEvents;
      if (!event) return;
      dispatch(event);
      if (withLog) setLog((entries) => addToLog(entries, event));
      if (event.terminal && event.kind === "STATUS" && event.seq > known) {
        void client.query({ query: GenerationQuery, variables: { id }, fetchPolicy: "network-only" }).catch(() => {});
      }
    },
  });
  return { live, log, error };
}
