import { describe, expect, it } from "vitest";
import { describePhase, estimateRemaining, formatDuration, percentOf } from "./format";

const progress = (over: object) => ({
  phase: "WAITING" as const,
  percent: 0,
  node: null,
  nodeClass: null,
  step: null,
  maxSteps: null,
  queuePosition: null,
  emittedAt: null,
  ...over,
});

describe("describePhase", () => {
  it("names the queue position while waiting", () => {
    expect(describePhase({ status: "QUEUED", progress: progress({ queuePosition: 3 }) })).toBe("Queued · 2 ahead");
    expect(describePhase({ status: "QUEUED", progress: progress({ queuePosition: 1 }) })).toBe("Queued · next up");
    expect(
      describePhase({ status: "RUNNING", progress: progress({ phase: "BACKEND_QUEUE", queuePosition: 1 }) }),
    ).toBe("Waiting on the backend · 1 ahead");
  });

  it("names the node and step while running, and the saving phase", () => {
    const running = progress({ phase: "EXECUTING", nodeClass: "KSampler", step: 3, maxSteps: 20, percent: 15 });
    expect(describePhase({ status: "RUNNING", progress: running })).toBe("Running · KSampler · step 3 of 20");
    expect(describePhase({ status: "RUNNING", progress: progress({ phase: "SAVING" }) })).toBe("Saving images");
    expect(describePhase({ status: "FAILED", progress: running })).toBe("Failed");
  });

  it("fills the bar on success", () => {
    expect(percentOf({ status: "SUCCEEDED", progress: progress({ percent: 80 }) })).toBe(100);
    expect(percentOf({ status: "RUNNING", progress: progress({ percent: 120 }) })).toBe(100);
  });
});

describe("time", () => {
  it("formats durations for people", () => {
    expect(formatDuration(2340)).toBe("2.3 s");
    expect(formatDuration(42_000)).toBe("42 s");
    expect(formatDuration(125_000)).toBe("2 min 05 s");
    expect(formatDuration(null)).toBe("—");
  });

  it("estimates what is left from the rate so far", () => {
    expect(estimateRemaining(50, 10_000)).toBe(10_000);
    expect(estimateRemaining(1, 10_000)).toBeNull();
    expect(estimateRemaining(100, 10_000)).toBeNull();
  });
});
