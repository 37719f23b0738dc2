import { useApolloClient, useSubscription } from "@apollo/client/react";
import { useReducer, useState } from "react";
import { GenerationEventsSubscription, GenerationQuery } from "../api/operations";
import type { GenerationFieldsFragment } from "../gql/graphql";
import { applyEvent, initialGeneration, isTerminal, type LiveGeneration } from "./reducer";

/**
 * Follow one generation live. Without a seed it starts from the server's SNAPSHOT; with a seed (a
 * record already loaded) it asks only for what happened after the seed's `lastSeq`. Reconnects
 * resume from the last sequence number seen (see ResumableWsLink). Key the caller by `id`.
 *
 * When the generation ends, its full record is fetched once so every view of it (lists, detail)
 * shows the final state from the cache.
 */
export function useGenerationEvents(
  id: string,
  seed?: GenerationFieldsFragment | null,
): { live: LiveGeneration; error: Error | undefined } {
  const client = useApolloClient();
  const [live, dispatch] = useReducer(applyEvent, undefined, () => initialGeneration(id, seed));
  const [after] = useState(() => (seed ? seed.lastSeq : null));
  const [skip] = useState(() => Boolean(seed && isTerminal(seed.status)));
  const { error } = useSubscription(GenerationEventsSubscription, {
    variables: { id, after },
    skip,
    ignoreResults: true,
    onData: ({ data }) => {
      const event = data.data?.generationEvents;
      if (!event) return;
      dispatch(event);
      if (event.terminal && event.kind === "STATUS") {
        void client.query({ query: GenerationQuery, variables: { id }, fetchPolicy: "network-only" }).catch(() => {});
      }
    },
  });
  return { live, error };
}
