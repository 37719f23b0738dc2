import { createGraphiQLFetcher, type Fetcher } from "@graphiql/toolkit";
import { createClient, type Client } from "graphql-ws";
import { websocketUrl } from "../api/client";
import { obtainToken } from "../auth/token";

/** The Authorization header from the playground's headers editor (any case), or null. */
export function authorizationOf(headers: Record<string, unknown> | undefined): string | null {
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (name.toLowerCase() === "authorization" && typeof value === "string" && value.trim()) return value.trim();
  }
  return null;
}

/** The headers editor's starting text: the dev user's token in dev mode, else the one this browser's app keeps. */
export async function initialHeaders(fetcher: typeof fetch = fetch, storage: Storage = localStorage): Promise<string> {
  const token = await obtainToken(fetcher, storage);
  return token ? JSON.stringify({ Authorization: `Bearer ${token}` }, null, 2) : "{}";
}

/**
 * Queries and mutations over HTTP, subscriptions over this host's websocket (graphql-transport-ws).
 *
 * The socket authenticates in `connection_init`, once per connection, so it takes the headers
 * editor's Authorization value; when that changes, the socket is replaced.
 */
export function createPlaygroundFetcher(location: Pick<Location, "protocol" | "host"> = window.location): Fetcher {
  let authorization: string | null = null;
  let ws: Client | null = null;
  let inner: Fetcher | null = null;
  return (params, options) => {
    const wanted = authorizationOf(options?.headers);
    if (inner === null || wanted !== authorization) {
      void ws?.dispose();
      authorization = wanted;
      const current = wanted;
      ws = createClient({
        url: websocketUrl(location),
        lazy: true,
        connectionParams: () => (current ? { authorization: current } : {}),
      });
      inner = createGraphiQLFetcher({ url: "/graphql", wsClient: ws });
    }
    return inner(params, options);
  };
}
