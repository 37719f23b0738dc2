import { describe, expect, it } from "vitest";
import { heartbeatAge } from "../pages/SystemPage";
import {
  countdown,
  describePhase,
  estimateRemaining,
  formatDuration,
  percentOf,
  readableBackendError,
  statusLabel,
} from "./format";

const progress = (over: object) => ({
  phase: "WAITING" as const,
  percent: 0,
  node: null,
  nodeClass: null,
  step: null,
  maxSteps: null,
  queuePosition: null,
  emittedAt: null,
  reason: null,
  retryAt: null,
  deadlineAt: null,
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

describe("a stalled or queued backend", () => {
  const now = Date.parse("2026-12-08T00:00:00Z");
  const inSeconds = (s: number) => now / 1000 + s;

  it("says 'Queued on backend' while ComfyUI queues the prompt, not RUNNING", () => {
    const queued = { status: "RUNNING" as const, progress: progress({ phase: "BACKEND_QUEUE", queuePosition: 2 }) };
    expect(statusLabel(queued)).toEqual({ label: "Queued on backend", tone: "queued" });
    const running = { status: "RUNNING" as const, progress: progress({ phase: "EXECUTING" }) };
    expect(statusLabel(running)).toEqual({ label: "Running", tone: "running" });
  });

  it("names a backend wait and counts down to the next try", () => {
    const waiting = {
      status: "RUNNING" as const,
      progress: progress({ phase: "BACKEND_WAIT", percent: 30, retryAt: inSeconds(12), reason: "Backend fake-1 is unreachable" }),
    };
    expect(statusLabel(waiting)).toEqual({ label: "No backend", tone: "stalled" });
    expect(describePhase(waiting, now)).toBe("Waiting for a backend · retry in 12 s");
    expect(describePhase(waiting, now + 7_000)).toBe("Waiting for a backend · retry in 5 s");
    expect(describePhase(waiting, now + 13_000)).toBe("Waiting for a backend · retrying now");
    expect(percentOf(waiting)).toBe(30);
    const queuedWait = { status: "QUEUED" as const, progress: progress({ phase: "BACKEND_WAIT" }) };
    expect(statusLabel(queuedWait).label).toBe("No backend");
  });

  it("counts down a retry, and a pending retry shows 0 %", () => {
    const retry = { status: "QUEUED" as const, progress: progress({ phase: "RETRY_WAIT", percent: 15, retryAt: inSeconds(95) }) };
    expect(describePhase(retry, now)).toBe("Waiting to retry · retry in 1 min 35 s");
    expect(statusLabel(retry)).toEqual({ label: "Retrying", tone: "stalled" });
    expect(percentOf(retry)).toBe(0);
    expect(countdown(null, now)).toBeNull();
  });

  it("says when live progress can't be followed", () => {
    const untracked = { status: "RUNNING" as const, progress: progress({ phase: "UNTRACKED", percent: 40 }) };
    expect(describePhase(untracked)).toBe("Running · progress unknown");
    expect(percentOf(untracked)).toBe(40);
  });
});

describe("readableBackendError", () => {
  it("turns the HTTP client's exception text into a reason", () => {
    expect(readableBackendError("ConnectError(ConnectionRefusedError(111, 'Connection refused'))")).toBe(
      "Connection refused: nothing is listening at this address. Is ComfyUI running?",
    );
    expect(readableBackendError("ConnectError('[Errno -2] Name or service not known')")).toBe("The host name does not resolve.");
    expect(readableBackendError("ConnectTimeout('')")).toBe("Timed out connecting: the host does not answer.");
    expect(readableBackendError("ReadTimeout('')")).toBe("Timed out waiting for an answer.");
    expect(readableBackendError("RemoteProtocolError('Server disconnected without sending a response.')")).toBe(
      "The connection was closed before ComfyUI answered.",
    );
    expect(readableBackendError("HTTPStatusError: 502 Bad Gateway")).toBe("ComfyUI answered HTTP 502.");
    expect(readableBackendError("ComfyError('queue is full')")).toBe("queue is full");
    expect(readableBackendError("Backend fake-1 is unreachable")).toBe("Backend fake-1 is unreachable");
  });
});

describe("heartbeatAge", () => {
  it("says just now for a beat stamped after the page's last tick, and the age otherwise", () => {
    expect(heartbeatAge(-300)).toBe("just now");
    expect(heartbeatAge(1200)).toBe("just now");
    expect(heartbeatAge(12_000)).toBe("12 s ago");
  });
});
