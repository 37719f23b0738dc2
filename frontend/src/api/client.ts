import { ApolloClient, ApolloLink, HttpLink, InMemoryCache } from "@apollo/client";
import { getMainDefinition } from "@apollo/client/utilities";
import { createClient as createWsClient, type Client } from "graphql-ws";
import introspection from "../gql/possibleTypes";
import { ConnectionStore } from "./connection";
import { createInputsApi, type InputsApi } from "./inputs";
import { ResumableWsLink } from "./resumableLink";

/** ws(s)://<this host>/graphql, so the same bundle works behind any host or proxy. */
export function websocketUrl(location: Pick<Location, "protocol" | "host">): string {
  return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/graphql`;
}

export interface SafelightClient {
  apollo: ApolloClient;
  ws: Client;
  connection: ConnectionStore;
  /** Uploads (`POST /inputs`) and input previews, with the same token. */
  inputs: InputsApi;
  dispose(): void;
}

export function createCache(): InMemoryCache {
  return new InMemoryCache({
    possibleTypes: introspection.possibleTypes,
    typePolicies: {
      Query: {
        fields: {
          generations: {
            keyArgs: ["status", "search"],
            merge(existing: { edges: unknown[] } | undefined, incoming: { edges: unknown[] }, { args }) {
              if (!existing || !args?.after) return incoming;
              return { ...incoming, edges: [...existing.edges, ...incoming.edges] };
            },
          },
        },
      },
      Generation: {
        fields: {
          images: { merge: (_existing, incoming: unknown[]) => incoming },
        },
      },
      GenerationEvent: { keyFields: false },
      Image: { keyFields: false },
      Progress: { keyFields: false },
    },
  });
}

export function createSafelightClient(token: string): SafelightClient {
  const connection = new ConnectionStore();
  const ws = createWsClient({
    url: websocketUrl(window.location),
    connectionParams: () => ({ authorization: `Bearer ${token}` }),
    lazy: true,
    lazyCloseTimeout: 3_000,
    keepAlive: 10_000,
    retryAttempts: 0, // ResumableWsLink resubscribes, with `after` moved forward
    on: {
      connecting: () => connection.connecting(),
      connected: () => connection.connected(),
      closed: (event) => {
        if (typeof event === "object" && event && "code" in event && event.code === 1000) connection.closedQuietly();
      },
    },
  });
  const http = new HttpLink({ uri: "/graphql", headers: { authorization: `Bearer ${token}` } });
  const subscriptions = new ResumableWsLink(ws, { store: connection });
  const link = ApolloLink.split(
    ({ query }) => {
      const definition = getMainDefinition(query);
      return definition.kind === "OperationDefinition" && definition.operation === "subscription";
    },
    subscriptions,
    http,
  );
  const apollo = new ApolloClient({ link, cache: createCache() });

  let previous = 0;
  const unsubscribe = connection.subscribe(() => {
    const { reconnects } = connection.getSnapshot();
    if (reconnects > previous) {
      previous = reconnects;
      // Lists and details may have missed changes while the socket was down.
      void apollo.refetchQueries({ include: "active" });
    }
  });

  return {
    apollo,
    ws,
    connection,
    inputs: createInputsApi(token),
    dispose() {
      unsubscribe();
      void ws.dispose();
      apollo.stop();
    },
  };
}
