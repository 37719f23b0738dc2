import { useApolloClient, useMutation } from "@apollo/client/react";
import { useState } from "react";
import {
  CancelGenerationMutation,
  DeleteGenerationMutation,
  RetryGenerationMutation,
} from "../api/operations";

/** Cancel, retry and delete, with the typed failures turned into one message. */
export function useGenerationActions(id: string) {
  const client = useApolloClient();
  const [message, setMessage] = useState<string | null>(null);
  const [cancel, cancelState] = useMutation(CancelGenerationMutation);
  const [retry, retryState] = useMutation(RetryGenerationMutation);
  const [remove, removeState] = useMutation(DeleteGenerationMutation);

  const run = async <T extends { __typename?: string }>(call: () => Promise<{ data?: T | null }>, pick: (d: T) => { __typename?: string; message?: string }) => {
    setMessage(null);
    try {
      const { data } = await call();
      const result = data ? pick(data) : null;
      if (result && "message" in result && result.message) {
        setMessage(result.message);
        return false;
      }
      return true;
    } catch (err) {
      setMessage(err instanceof Error ? err.message : String(err));
      return false;
    }
  };

  return {
    message,
    busy: cancelState.loading || retryState.loading || removeState.loading,
    cancel: () => run(() => cancel({ variables: { id } }), (d) => d.cancelGeneration),
    retry: () => run(() => retry({ variables: { id } }), (d) => d.retryGeneration),
    remove: async () => {
      const ok = await run(() => remove({ variables: { id } }), (d) => d.deleteGeneration);
      if (ok) {
        client.cache.evict({ id: client.cache.identify({ __typename: "Generation", id }) });
        client.cache.gc();
      }
      return ok;
    },
  };
}
