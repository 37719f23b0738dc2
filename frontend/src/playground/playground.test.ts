/// <reference types="node" />
import { buildSchema, parse, validate } from "graphql";
import { readFileSync } from "node:fs";
import { describe, expect, it, vi } from "vitest";
import { EXAMPLES } from "./examples";
import { authorizationOf, initialHeaders } from "./fetcher";

// Vitest runs in frontend/; the API's committed schema is one level up (what codegen reads too).
const schema = buildSchema(readFileSync("../schema.graphql", "utf8"));

const respond = (status: number, body: unknown) =>
  vi.fn(async () => new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } }));

describe("playground examples", () => {
  it("create, follow and list, each valid against the API schema", () => {
    expect(EXAMPLES.map((e) => e.title)).toEqual(["Create", "Follow", "List"]);
    for (const example of EXAMPLES) {
      expect(validate(schema, parse(example.query)), example.title).toEqual([]);
      expect(() => JSON.parse(example.variables ?? "{}")).not.toThrow();
    }
    expect(EXAMPLES[1]?.query).toMatch(/^subscription /m);
  });
});

describe("initialHeaders", () => {
  it("fills the dev user's token in dev mode", async () => {
    const headers = JSON.parse(await initialHeaders(respond(200, { token: "dev-token", user: "dev" })));
    expect(headers).toEqual({ Authorization: "Bearer dev-token" });
  });

  it("uses the token this browser's app keeps, without asking the API", async () => {
    localStorage.setItem("safelight.token", "kept");
    const fetcher = respond(200, { token: "dev-token" });
    expect(JSON.parse(await initialHeaders(fetcher))).toEqual({ Authorization: "Bearer kept" });
    expect(fetcher).not.toHaveBeenCalled();
  });

  it("leaves the headers empty outside dev mode", async () => {
    expect(await initialHeaders(respond(404, "not found"))).toBe("{}");
  });
});

describe("authorizationOf", () => {
  it("finds the header in any case and ignores blanks", () => {
    expect(authorizationOf({ authorization: "Bearer a" })).toBe("Bearer a");
    expect(authorizationOf({ AUTHORIZATION: " Bearer b " })).toBe("Bearer b");
    expect(authorizationOf({ Authorization: "  " })).toBeNull();
    expect(authorizationOf(undefined)).toBeNull();
  });
});
