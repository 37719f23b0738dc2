export const TOKEN_KEY = "safelight.token";
/** Set by "Sign out": dev mode then waits to be asked instead of signing the dev user in again. */
export const SIGNED_OUT_KEY = "safelight.signedOut";

/** Dev mode, on localhost: the local dev user's token from the API; null anywhere else. */
export async function devToken(fetcher: typeof fetch = fetch): Promise<string | null> {
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

/** A stored token, else (dev mode, on localhost, unless the user signed out) the dev user's token. */
export async function obtainToken(fetcher: typeof fetch = fetch, storage: Storage = localStorage): Promise<string | null> {
  const stored = storage.getItem(TOKEN_KEY);
  if (stored) return stored;
  if (storage.getItem(SIGNED_OUT_KEY)) return null;
  return devToken(fetcher);
}

/** Keep a token (signing in), or forget it and stay signed out (signing out), across reloads. */
export function rememberSignIn(token: string | null, storage: Storage = localStorage): void {
  if (token) {
    storage.setItem(TOKEN_KEY, token);
    storage.removeItem(SIGNED_OUT_KEY);
  } else {
    storage.removeItem(TOKEN_KEY);
    storage.setItem(SIGNED_OUT_KEY, "1");
  }
}
