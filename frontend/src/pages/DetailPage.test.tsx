import { ApolloClient, ApolloLink } from "@apollo/client";
import { ApolloProvider } from "@apollo/client/react";
import { getMainDefinition } from "@apollo/client/utilities";
import { act, render, screen, within } from "@testing-library/react";
import type { Sink, SubscribePayload } from "graphql-ws";
import { MemoryRouter, Route, Routes } from "react-router";
import { Observable } from "rxjs";
import { describe, expect, it } from "vitest";
import { createCache } from "../api/client";
import { ConnectionStore } from "../api/connection";
import { GenerationQuery } from "../api/operations";
import { ResumableWsLink } from "../api/resumableLink";
import type { GenerationFieldsFragment } from "../gql/graphql";
import { generationFixture, progressFixture } from "../test/fixtures";
import { DetailPage } from "./DetailPage";

/** The websocket client stand-in: one entry per `subscribe` message the page would send. */
class FakeWs {
  calls: { payload: SubscribePayload; sink: Sink }[] = [];
  subscribe = (payload: SubscribePayload, sink: Sink) => {
    this.calls.push({ payload, sink });
    return () => {};
  };
}

const base = {
  __typename: "GenerationEvent" as const,
  generationId: "g1",
  at: 1_767_225_600,
  terminal: false,
  status: null,
  attempt: null,
  error: null,
  progress: null,
  image: null,
  previewUrl: null,
  generation: null,
};

function renderDetail(generation: GenerationFieldsFragment) {
  const ws = new FakeWs();
  const subscriptions = new ResumableWsLink(ws, { store: new ConnectionStore(), backoffMs: () => 1, schedule: () => () => {} });
  const quiet = new ApolloLink(() => new Observable(() => {})); // queries stay in flight: the page reads the cache
  const link = ApolloLink.split(
    ({ query }) => {
      const main = getMainDefinition(query);
      return main.kind === "OperationDefinition" && main.operation === "subscription";
    },
    subscriptions,
    quiet,
  );
  const client = new ApolloClient({ link, cache: createCache() });
  client.writeQuery({ query: GenerationQuery, variables: { id: generation.id }, data: { generation } });
  render(
    <ApolloProvider client={client}>
      <MemoryRouter initialEntries={[`/generations/${generation.id}`]}>
        <Routes>
          <Route path="/generations/:id" element={<DetailPage />} />
        </Routes>
      </MemoryRouter>
    </ApolloProvider>,
  );
  const send = (event: Record<string, unknown> & { seq: number; kind: string }) =>
    act(async () => {
      ws.calls.at(-1)?.sink.next({ data: { generationEvents: { ...base, ...event } } });
      await Promise.resolve();
    });
  return { ws, send };
}

describe("DetailPage", () => {
  it("follows a running generation and fills its event log over one subscription", async () => {
    const { ws, send } = renderDetail(generationFixture({ status: "RUNNING", lastSeq: 2 }));
    await screen.findByTestId("seed-used");
    expect(ws.calls).toHaveLength(1);
    expect(ws.calls[0]?.payload.variables).toEqual({ id: "g1", after: 0 });

    await send({ seq: 1, kind: "STATUS", status: "QUEUED", attempt: 1 });
    await send({ seq: 2, kind: "STATUS", status: "RUNNING", attempt: 1 });
    await send({ seq: 2, kind: "PROGRESS", progress: progressFixture(40, 4) });
    expect(screen.getByRole("progressbar")).toHaveAttribute("aria-valuenow", "40");
    await send({ seq: 3, kind: "STATUS", status: "SUCCEEDED", attempt: 1, terminal: true });
    const log = within(screen.getByTestId("event-log"));
    expect(log.getAllByRole("listitem").map((li) => li.textContent)).toEqual([
      expect.stringMatching(/Queued$/),
      expect.stringMatching(/Running$/),
      expect.stringMatching(/Done$/),
    ]);
    expect(screen.getByTestId("status-badge")).toHaveTextContent("Done");
    expect(ws.calls).toHaveLength(1);
  });

  it("replays a finished generation's log over one subscription", async () => {
    const { ws, send } = renderDetail(generationFixture({ status: "SUCCEEDED", lastSeq: 2 }));
    await screen.findByTestId("seed-used");
    expect(ws.calls).toHaveLength(1);
    await send({ seq: 2, kind: "STATUS", status: "SUCCEEDED", attempt: 1, terminal: true });
    expect(within(screen.getByTestId("event-log")).getAllByRole("listitem")).toHaveLength(1);
  });
});
