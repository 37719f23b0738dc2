import { ApolloClient, ApolloLink } from "@apollo/client";
import { ApolloProvider } from "@apollo/client/react";
import { getMainDefinition } from "@apollo/client/utilities";
import { act, render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { Observable, Subject } from "rxjs";
import { describe, expect, it, vi } from "vitest";
import { createCache } from "../api/client";
import type { GenerationFieldsFragment } from "../gql/graphql";
import { generationFixture, progressFixture } from "../test/fixtures";
import { ActiveList } from "./ActiveList";

const connection = (nodes: GenerationFieldsFragment[]) => ({
  generations: {
    __typename: "GenerationConnection",
    edges: nodes.map((node) => ({ __typename: "GenerationEdge", cursor: node.id, node })),
    pageInfo: { __typename: "PageInfo", hasNextPage: false, endCursor: null },
  },
});

const event = (over: Record<string, unknown>) => ({
  data: {
    myGenerationEvents: {
      __typename: "GenerationEvent",
      seq: 5,
      kind: "STATUS",
      status: null,
      terminal: false,
      progress: null,
      ...over,
    },
  },
});

/** The query answered from a script of lists (one per fetch), subscriptions from a subject the test pushes to. */
function setup(lists: GenerationFieldsFragment[][]) {
  const events = new Subject<Record<string, unknown>>();
  const queries: Record<string, unknown>[] = [];
  const link = new ApolloLink((operation) => {
    const def = getMainDefinition(operation.query);
    if (def.kind === "OperationDefinition" && def.operation === "subscription") return events.asObservable() as never;
    queries.push(operation.variables);
    const list = lists[Math.min(queries.length - 1, lists.length - 1)] ?? [];
    return new Observable((observer) => {
      observer.next({ data: connection(list) });
      observer.complete();
    }) as never;
  });
  const client = new ApolloClient({ link, cache: createCache() });
  const onSelect = vi.fn();
  render(
    <ApolloProvider client={client}>
      <ActiveList current="a" onSelect={onSelect} refetchDelayMs={0} />
    </ApolloProvider>,
  );
  const push = (over: Record<string, unknown>) =>
    act(async () => {
      events.next(event(over));
      await new Promise((r) => setTimeout(r, 10));
    });
  return { queries, push, onSelect };
}

const items = () => screen.queryAllByTestId("active-item").map((li) => li.getAttribute("data-id"));

describe("ActiveList", () => {
  const a = generationFixture({ id: "a", prompt: "first, running", status: "RUNNING", createdAt: "2026-01-01T00:00:00Z" });
  const b = generationFixture({ id: "b", prompt: "second, queued", status: "QUEUED", createdAt: "2026-01-01T00:00:05Z" });
  const c = generationFixture({ id: "c", prompt: "made in another tab", status: "QUEUED", createdAt: "2026-01-01T00:00:09Z" });

  it("lists my queued and running generations in queue order and marks the one on the live panel", async () => {
    const { queries, onSelect } = setup([[b, a]]);
    await waitFor(() => expect(items()).toEqual(["a", "b"]));
    expect(queries[0]).toMatchObject({ status: ["QUEUED", "RUNNING", "CANCELLING"] });
    expect(screen.getByRole("button", { name: /first, running/ })).toHaveAttribute("aria-current", "true");
    expect(screen.getByLabelText("2 active")).toBeInTheDocument();
    await userEvent.setup().click(screen.getByRole("button", { name: /second, queued/ }));
    expect(onSelect).toHaveBeenCalledWith("b");
  });

  it("follows myGenerationEvents: progress in place, an ended one leaves, a new one is fetched", async () => {
    const { queries, push } = setup([[a, b], [b], [b, c]]);
    await waitFor(() => expect(items()).toEqual(["a", "b"]));

    await push({ generationId: "b", kind: "STATUS", status: "RUNNING" });
    const second = screen.getAllByTestId("active-item")[1] as HTMLElement;
    expect(within(second).getByTestId("status-badge")).toHaveTextContent("Running");
    await push({ generationId: "b", kind: "PROGRESS", progress: progressFixture(40, 4) });
    expect(second.querySelector<HTMLElement>(".active-bar > span")?.style.width).toBe("40%");
    expect(queries).toHaveLength(1); // nothing new: no refetch

    await push({ generationId: "a", kind: "STATUS", status: "SUCCEEDED", terminal: true });
    expect(items()).toEqual(["b"]);

    await push({ generationId: "c", kind: "STATUS", status: "QUEUED" });
    await waitFor(() => expect(items()).toEqual(["b", "c"]));
    expect(queries).toHaveLength(3); // once at first, after the end of a, for c
  });

  it("shows nothing when nothing is queued or running, and appears when something is", async () => {
    const { push } = setup([[], [c]]);
    await act(async () => new Promise((r) => setTimeout(r, 20)));
    expect(screen.queryByTestId("active-list")).toBeNull();
    await push({ generationId: "c", kind: "STATUS", status: "QUEUED" });
    await waitFor(() => expect(items()).toEqual(["c"]));
  });
});
