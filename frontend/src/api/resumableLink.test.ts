import { ApolloClient, ApolloLink, InMemoryCache } from "@apollo/client";
import type { DocumentNode } from "graphql";
import type { Sink, SubscribePayload } from "graphql-ws";
import { describe, expect, it } from "vitest";
import { ConnectionStore } from "./connection";
import { GenerationEventsSubscription, SystemStatusSubscription } from "./operations";
import { ResumableWsLink } from "./resumableLink";

/** A graphql-ws client stand-in: records subscribe calls and lets the test drive each sink. */
class FakeWs {
  calls: { payload: SubscribePayload; sink: Sink; disposed: boolean }[] = [];
  subscribe = (payload: SubscribePayload, sink: Sink) => {
    const call = { payload, sink, disposed: false };
    this.calls.push(call);
    return () => {
      call.disposed = true;
    };
  };
  last() {
    const call = this.calls.at(-1);
    if (!call) throw new Error("no subscription");
    return call;
  }
}

function setup() {
  const ws = new FakeWs();
  const store = new ConnectionStore();
  const timers: { fn: () => void; ms: number; cancelled: boolean }[] = [];
  const link = new ResumableWsLink(ws, {
    store,
    backoffMs: (n) => n * 100,
    schedule: (fn, ms) => {
      const t = { fn, ms, cancelled: false };
      timers.push(t);
      return () => (t.cancelled = true);
    },
  });
  const client = new ApolloClient({ link: ApolloLink.empty(), cache: new InMemoryCache() });
  const received: unknown[] = [];
  const outcome: { error?: unknown; complete?: boolean } = {};
  const subscribe = (query: DocumentNode = GenerationEventsSubscription, variables: Record<string, unknown> = { id: "g1", after: null }) =>
    ApolloLink.execute(link, { query, variables }, { client }).subscribe({
      next: (r) => received.push(r.data),
      error: (e) => (outcome.error = e),
      complete: () => (outcome.complete = true),
    });
  const fire = () => timers.splice(0).forEach((t) => !t.cancelled && t.fn());
  return { ws, store, timers, received, outcome, subscribe, fire };
}

const event = (seq: number, kind = "PROGRESS") => ({ data: { generationEvents: { seq, kind } } });
const drop = { code: 1006, reason: "" };

describe("ResumableWsLink", () => {
  it("passes events through and completes with the server", () => {
    const { ws, received, outcome, subscribe } = setup();
    subscribe();
    ws.last().sink.next(event(1, "SNAPSHOT"));
    ws.last().sink.complete();
    expect(received).toEqual([event(1, "SNAPSHOT").data]);
    expect(outcome.complete).toBe(true);
  });

  it("resubscribes after a dropped socket from the last sequence number seen", () => {
    const { ws, store, timers, received, subscribe, fire } = setup();
    subscribe();
    expect(ws.last().payload.variables).toEqual({ id: "g1", after: null });
    ws.last().sink.next(event(3, "SNAPSHOT"));
    ws.last().sink.next(event(4, "STATUS"));
    ws.last().sink.next(event(4, "PROGRESS"));
    ws.last().sink.error(drop);
    expect(store.getSnapshot().phase).toBe("reconnecting");
    expect(timers).toHaveLength(1);
    fire();
    expect(ws.calls).toHaveLength(2);
    expect(ws.last().payload.variables).toEqual({ id: "g1", after: 4 });
    ws.last().sink.next(event(5, "IMAGE"));
    expect(received).toHaveLength(4);
    store.connected();
    expect(store.getSnapshot()).toMatchObject({ phase: "connected", reconnects: 1 });
  });

  it("keeps the original variables when nothing arrived before the drop, and backs off", () => {
    const { ws, timers, subscribe, fire } = setup();
    subscribe(GenerationEventsSubscription, { id: "g1", after: 7 });
    ws.last().sink.error(drop);
    expect(timers[0]?.ms).toBe(100);
    fire();
    expect(ws.last().payload.variables).toEqual({ id: "g1", after: 7 });
    ws.last().sink.error(drop);
    expect(timers[0]?.ms).toBe(200);
  });

  it("resubscribes operations without `after` unchanged", () => {
    const { ws, subscribe, fire } = setup();
    subscribe(SystemStatusSubscription, {});
    ws.last().sink.next({ data: { systemStatus: { queued: 1 } } });
    ws.last().sink.error(drop);
    fire();
    expect(ws.calls).toHaveLength(2);
    expect(ws.last().payload.variables).toEqual({});
  });

  it("does not retry GraphQL errors or refused connections", () => {
    const a = setup();
    a.subscribe();
    a.ws.last().sink.error([{ message: "no generation g1" }]);
    expect(String(a.outcome.error)).toMatch(/no generation g1/);
    expect(a.timers).toHaveLength(0);

    const b = setup();
    b.subscribe();
    b.ws.last().sink.error({ code: 4403, reason: "Forbidden" });
    expect(b.store.getSnapshot()).toMatchObject({ phase: "rejected", message: "Forbidden" });
    expect(b.timers).toHaveLength(0);
  });

  it("cancels a pending resubscription when the consumer unsubscribes", () => {
    const { ws, timers, subscribe, fire } = setup();
    const subscription = subscribe();
    ws.last().sink.error(drop);
    subscription.unsubscribe();
    expect(timers[0]?.cancelled).toBe(true);
    fire();
    expect(ws.calls).toHaveLength(1);
  });
});
