import { ApolloClient } from "@apollo/client";
import { ApolloProvider } from "@apollo/client/react";
import { MockSubscriptionLink } from "@apollo/client/testing";
import { act, render, screen } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { createCache } from "../api/client";
import { ProgressBar } from "../components/ProgressBar";
import type { GenerationFieldsFragment } from "../gql/graphql";
import { generationFixture, imageFixture, progressFixture } from "../test/fixtures";
import { useGenerationEvents } from "./useGenerationEvents";

function Probe({ seed }: { seed?: GenerationFieldsFragment }) {
  const { live } = useGenerationEvents("g1", seed);
  return (
    <div>
      <ProgressBar live={live} />
      <span data-testid="status">{live.status}</span>
      <span data-testid="images">{live.images.map((i) => i.index).join(",")}</span>
      <span data-testid="seq">{live.lastSeq}</span>
    </div>
  );
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

const progress = progressFixture;
const image = imageFixture;

function setup(seed?: GenerationFieldsFragment) {
  const link = new MockSubscriptionLink();
  const client = new ApolloClient({ link, cache: createCache() });
  render(
    <ApolloProvider client={client}>
      <Probe seed={seed} />
    </ApolloProvider>,
  );
  const send = (event: Record<string, unknown> & { seq: number; kind: string }) =>
    act(async () => {
      link.simulateResult({ result: { data: { generationEvents: { ...base, ...event } } } });
      await new Promise((resolve) => setTimeout(resolve, 5)); // the mock link delivers on a timer
    });
  return { link, send };
}

describe("useGenerationEvents", () => {
  it("starts from the snapshot, moves the bar, dedupes and ends on the terminal event", async () => {
    const { link, send } = setup();
    expect(link.operation?.variables).toEqual({ id: "g1", after: null });
    await send({ seq: 2, kind: "SNAPSHOT", status: "RUNNING", generation: generationFixture({ status: "RUNNING", lastSeq: 2 }) });
    await send({ seq: 2, kind: "PROGRESS", progress: progress(40, 4) });
    expect(screen.getByRole("progressbar")).toHaveAttribute("aria-valuenow", "40");
    expect(screen.getByTestId("phase")).toHaveTextContent("Running · KSampler · step 4 of 10");
    await send({ seq: 3, kind: "IMAGE", image: image(0) });
    await send({ seq: 3, kind: "IMAGE", image: image(0) });
    await send({ seq: 2, kind: "PROGRESS", progress: progress(10, 1) });
    expect(screen.getByRole("progressbar")).toHaveAttribute("aria-valuenow", "40");
    await send({ seq: 4, kind: "STATUS", status: "SUCCEEDED", terminal: true });
    expect(screen.getByTestId("status")).toHaveTextContent("SUCCEEDED");
    expect(screen.getByTestId("images")).toHaveTextContent(/^0$/);
    expect(screen.getByRole("progressbar")).toHaveAttribute("aria-valuenow", "100");
    expect(screen.getByTestId("phase")).toHaveTextContent("Done");
  });

  it("reattaches to a loaded generation from its last sequence number", async () => {
    const seed = generationFixture({ status: "RUNNING", lastSeq: 9 });
    const { link, send } = setup(seed);
    expect(link.operation?.variables).toEqual({ id: "g1", after: 9 });
    expect(screen.getByTestId("seq")).toHaveTextContent("9");
    await send({ seq: 10, kind: "STATUS", status: "CANCELLING" });
    expect(screen.getByTestId("phase")).toHaveTextContent("Cancelling…");
  });

  it("does not subscribe to a finished generation", () => {
    const { link } = setup(generationFixture({ status: "SUCCEEDED" }));
    expect(link.operation).toBeUndefined();
  });
});
