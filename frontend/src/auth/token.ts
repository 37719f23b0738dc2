export const TOKEN_KEY = "safelight.token";

/** A stored token, else (dev mode, on localhost) the local user's token from the API. */
export async function obtainToken(fetcher: typeof fetch = fetch, storage: Storage = localStorage): Promise<string | null> {
  const stored = storage.getItem(TOKEN_KEY);
  if (stored) return stored;
  try {
    const response = await fetcher("/dev/token", { headers: { accept: "application/json" } });
    if (!response.ok) return null;
    const body: unknown = await response.json();
    if (body && typeof body === "object" && "token" in body && typeof body.token === "string") return body.token;
  } catch {
    // not in dev mode, or the API is not reachable: ask for a token
  }
  return null;
}
