import { describe, expect, it } from "vitest";
import type { GenerationFieldsFragment } from "../gql/graphql";
import { generationFixture, imageFixture, progressFixture } from "../test/fixtures";
import { percentOf } from "../components/format";
import { applyEvent, initialGeneration, type GenerationEventInput, type LiveGeneration } from "./reducer";

const image = imageFixture;
const progress = progressFixture;

// A RUNNING generation three events in.
const generation = (over: Partial<GenerationFieldsFragment> = {}): GenerationFieldsFragment =>
  generationFixture({
    status: "RUNNING",
    startedAt: "2026-01-01T00:00:01Z",
    lastSeq: 3,
    progress: progress(20),
    ...over,
  });

const event = (over: Partial<GenerationEventInput>): GenerationEventInput => ({
  seq: 0,
  kind: "PROGRESS",
  at: 1_767_225_600,
  terminal: false,
  status: null,
  attempt: null,
  error: null,
  progress: null,
  image: null,
  previewUrl: null,
  ...over,
});

const fold = (state: LiveGeneration, events: GenerationEventInput[]) => events.reduce(applyEvent, state);

describe("applyEvent", () => {
  it("takes the snapshot as the whole state", () => {
    const state = applyEvent(initialGeneration("g1"), event({ kind: "SNAPSHOT", seq: 3, generation: generation() }));
    expect(state.status).toBe("RUNNING");
    expect(state.lastSeq).toBe(3);
    expect(state.progress?.percent).toBe(20);
    expect(state.startedAt).toBe(Date.parse("2026-01-01T00:00:01Z"));
  });

  it("drops durable events it already has (a resumed subscription replays them)", () => {
    const start = initialGeneration("g1", generation({ lastSeq: 3 }));
    const state = fold(start, [
      event({ kind: "IMAGE", seq: 4, image: image(0) }),
      event({ kind: "IMAGE", seq: 4, image: image(0) }),
      event({ kind: "STATUS", seq: 3, status: "QUEUED" }),
      event({ kind: "IMAGE", seq: 5, image: image(1) }),
    ]);
    expect(state.images.map((i) => i.index)).toEqual([0, 1]);
    expect(state.status).toBe("RUNNING");
    expect(state.lastSeq).toBe(5);
  });

  it("ignores progress older than the last durable event", () => {
    const start = initialGeneration("g1", generation({ lastSeq: 6 }));
    const stale = applyEvent(start, event({ kind: "PROGRESS", seq: 5, progress: progress(90) }));
    expect(stale).toBe(start);
    const fresh = applyEvent(start, event({ kind: "PROGRESS", seq: 6, progress: progress(40) }));
    expect(fresh.progress?.percent).toBe(40);
    const preview = applyEvent(fresh, event({ kind: "PREVIEW", seq: 6, previewUrl: "/previews/abc" }));
    expect(preview.previewUrl).toBe("/previews/abc");
  });

  it("ends on the terminal event and ignores late ephemeral ones", () => {
    const start = initialGeneration("g1", generation({ lastSeq: 3 }));
    const done = fold(start, [
      event({ kind: "PREVIEW", seq: 3, previewUrl: "/previews/x" }),
      event({ kind: "IMAGE", seq: 4, image: image(0) }),
      event({ kind: "STATUS", seq: 5, status: "SUCCEEDED", terminal: true, at: 1_767_225_610 }),
      event({ kind: "PROGRESS", seq: 5, progress: progress(10) }),
    ]);
    expect(done.terminal).toBe(true);
    expect(done.status).toBe("SUCCEEDED");
    expect(done.previewUrl).toBeNull();
    expect(done.progress?.percent).toBe(20);
    expect(done.finishedAt).toBe(1_767_225_610_000);
  });

  it("keeps the error of a failed run", () => {
    const error = { code: "execution_error", message: "boom", retryable: false, node: "3 (KSampler)", input: null };
    const failed = applyEvent(
      initialGeneration("g1", generation()),
      event({ kind: "STATUS", seq: 4, status: "FAILED", terminal: true, error }),
    );
    expect(failed.error).toEqual(error);
    expect(failed.terminal).toBe(true);
  });

  it("starts over on a retry's new attempt", () => {
    const failed = initialGeneration("g1", generation({ status: "FAILED", images: [image(0)], lastSeq: 5 }));
    const retried = applyEvent(failed, event({ kind: "STATUS", seq: 6, status: "QUEUED", attempt: 2 }));
    expect(retried.terminal).toBe(false);
    expect(retried.images).toEqual([]);
    expect(retried.attempt).toBe(2);
    expect(retried.finishedAt).toBeNull();
  });

  it("never moves progress back within an attempt, and keeps the new phase", () => {
    const start = initialGeneration("g1", generation({ lastSeq: 3 }));
    const state = fold(start, [
      event({ kind: "PROGRESS", seq: 3, progress: progress(35, 7) }),
      event({ kind: "PROGRESS", seq: 3, progress: { ...progress(0), phase: "BACKEND_WAIT", reason: "Backend fake-1 is unreachable" } }),
    ]);
    expect(state.progress?.percent).toBe(35);
    expect(state.progress?.phase).toBe("BACKEND_WAIT");
    expect(state.progress?.reason).toBe("Backend fake-1 is unreachable");
    const resumed = applyEvent(state, event({ kind: "PROGRESS", seq: 3, progress: progress(40, 8) }));
    expect(resumed.progress?.percent).toBe(40);
  });

  it("shows a retry the same live as after a reload: waiting to retry at 0 %, with the reason", () => {
    const error = { code: "BACKEND_UNAVAILABLE", message: "connection refused", retryable: true, node: null, input: null };
    // Live: attempt 1 reached 15 %, then failed and was queued again as attempt 2.
    const running = initialGeneration("g1", generation({ lastSeq: 3, progress: progress(15) }));
    const live = applyEvent(running, event({ kind: "STATUS", seq: 4, status: "QUEUED", attempt: 2, error }));
    // Reload: the record still holds the first attempt's 15 %, in phase RETRY_WAIT.
    const record = generation({
      status: "QUEUED",
      attempt: 2,
      lastSeq: 4,
      error,
      progress: { ...progress(15), phase: "RETRY_WAIT", node: null, nodeClass: null, step: null, maxSteps: null },
    });
    const reloaded = initialGeneration("g1", record);
    expect(percentOf(live)).toBe(0);
    expect(percentOf(reloaded)).toBe(0);
    expect(live.progress?.phase).toBe("RETRY_WAIT");
    expect(reloaded.progress?.phase).toBe("RETRY_WAIT");
    expect(live.error).toEqual(error);
    expect(reloaded.error).toEqual(error);
  });

  it("drops an earlier attempt's error when the generation succeeds", () => {
    const error = { code: "BACKEND_UNAVAILABLE", message: "connection refused", retryable: true, node: null, input: null };
    const retried = initialGeneration("g1", generation({ attempt: 2, error, lastSeq: 3 }));
    const done = applyEvent(retried, event({ kind: "STATUS", seq: 4, status: "SUCCEEDED", terminal: true }));
    expect(done.error).toBeNull();
  });

  it("marks a deleted generation terminal", () => {
    const state = applyEvent(initialGeneration("g1", generation()), event({ kind: "DELETED", seq: 3, terminal: true }));
    expect(state.deleted).toBe(true);
    expect(state.terminal).toBe(true);
  });

  it("ignores a snapshot older than what it holds", () => {
    const start = initialGeneration("g1", generation({ lastSeq: 8 }));
    expect(applyEvent(start, event({ kind: "SNAPSHOT", seq: 3, generation: generation({ lastSeq: 3 }) }))).toBe(start);
  });
});
