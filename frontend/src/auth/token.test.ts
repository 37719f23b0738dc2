import { describe, expect, it, vi } from "vitest";
import { obtainToken, rememberSignIn, SIGNED_OUT_KEY, TOKEN_KEY } from "./token";

const respond = (status: number, body: unknown) =>
  vi.fn(async () => new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } }));

describe("obtainToken", () => {
  it("prefers the stored token and does not ask the API", async () => {
    localStorage.setItem(TOKEN_KEY, "stored");
    const fetcher = respond(200, { token: "dev" });
    expect(await obtainToken(fetcher)).toBe("stored");
    expect(fetcher).not.toHaveBeenCalled();
  });

  it("takes the local user's token in dev mode", async () => {
    const fetcher = respond(200, { token: "dev", user: "dev" });
    expect(await obtainToken(fetcher)).toBe("dev");
    expect(fetcher).toHaveBeenCalledWith("/dev/token", expect.anything());
  });

  it("returns null outside dev mode or when the API is down", async () => {
    expect(await obtainToken(respond(404, "not found"))).toBeNull();
    expect(await obtainToken(vi.fn(async () => Promise.reject(new TypeError("offline"))))).toBeNull();
  });

  it("stays signed out after Sign out, even in dev mode, until the user signs in again", async () => {
    localStorage.setItem(TOKEN_KEY, "dev");
    rememberSignIn(null);
    const fetcher = respond(200, { token: "dev" });
    expect(await obtainToken(fetcher)).toBeNull();
    expect(fetcher).not.toHaveBeenCalled();
    rememberSignIn("dev");
    expect(localStorage.getItem(SIGNED_OUT_KEY)).toBeNull();
    expect(await obtainToken(fetcher)).toBe("dev");
  });
});
