import { render, screen } from "@testing-library/react";
import { describe, expect, it, vi } from "vitest";
import type { GenerationFieldsFragment } from "../gql/graphql";
import { initialGeneration } from "../generation/reducer";
import { generationFixture, imageFixture, progressFixture } from "../test/fixtures";
import { ImageGrid } from "./ImageGrid";
import { ProgressBar } from "./ProgressBar";
import { StatusBadge } from "./StatusBadge";

const NOW = Date.parse("2026-12-08T00:00:00Z");

const live = (over: Partial<GenerationFieldsFragment>) =>
  initialGeneration("g1", generationFixture({ status: "RUNNING", startedAt: "2026-12-07T23:59:00Z", ...over }));

describe("ProgressBar while the backend is away", () => {
  it("shows the reason, counts down to the next try and when it gives up, and guesses no time left", () => {
    vi.useFakeTimers({ now: NOW });
    try {
      const stalled = live({
        progress: {
          ...progressFixture(30, 9),
          phase: "BACKEND_WAIT",
          reason: "Backend fake-1 is unreachable",
          retryAt: NOW / 1000 + 8,
          deadlineAt: NOW / 1000 + 250,
        },
      });
      render(<ProgressBar live={stalled} />);
      expect(screen.getByTestId("phase")).toHaveTextContent("Waiting for a backend · retry in 8 s");
      expect(screen.getByTestId("stall-reason")).toHaveTextContent(
        "Backend fake-1 is unreachable. Gives up in 4 min 10 s.",
      );
      expect(screen.getByRole("progressbar")).toHaveAttribute("aria-valuenow", "30");
      expect(screen.queryByText(/left$/)).toBeNull();
    } finally {
      vi.useRealTimers();
    }
  });

  it("leads a card with the countdown, the badge saying what it waits for", () => {
    vi.useFakeTimers({ now: NOW });
    try {
      const stalled = live({
        progress: { ...progressFixture(30, 9), phase: "BACKEND_WAIT", reason: "Backend fake-1 is unreachable", retryAt: NOW / 1000 + 3 },
      });
      render(<ProgressBar live={stalled} compact />);
      expect(screen.getByTestId("phase")).toHaveTextContent(/^Retry in 3 s$/);
      expect(screen.getByTestId("stall-reason")).toHaveTextContent("Backend fake-1 is unreachable");
    } finally {
      vi.useRealTimers();
    }
  });

  it("gives a retry's cause as its reason, in a compact card too", () => {
    const retrying = live({
      status: "QUEUED",
      attempt: 2,
      error: { code: "BACKEND_UNAVAILABLE", message: "connection refused", retryable: true, node: null, input: null },
      progress: { ...progressFixture(15), phase: "RETRY_WAIT" },
    });
    render(<ProgressBar live={retrying} compact />);
    expect(screen.getByTestId("stall-reason")).toHaveTextContent("Retrying after: connection refused");
    expect(screen.getByRole("progressbar")).toHaveAttribute("aria-valuenow", "0");
  });

  it("leads a card queued on the backend with how many prompts are ahead", () => {
    const queued = live({ progress: { ...progressFixture(0), phase: "BACKEND_QUEUE", queuePosition: 2 } });
    render(<ProgressBar live={queued} compact />);
    expect(screen.getByTestId("phase")).toHaveTextContent(/^2 ahead$/);
  });

  it("shows no reason while running normally", () => {
    render(<ProgressBar live={live({ progress: progressFixture(50, 5) })} />);
    expect(screen.queryByTestId("stall-reason")).toBeNull();
  });
});

describe("StatusBadge", () => {
  it("says 'Queued on backend' for a prompt in ComfyUI's queue and 'No backend' while waiting for one", () => {
    const { rerender } = render(
      <StatusBadge status="RUNNING" progress={{ ...progressFixture(0), phase: "BACKEND_QUEUE", queuePosition: 1 }} />,
    );
    expect(screen.getByTestId("status-badge")).toHaveTextContent("Queued on backend");
    rerender(<StatusBadge status="RUNNING" progress={{ ...progressFixture(20), phase: "BACKEND_WAIT" }} />);
    expect(screen.getByTestId("status-badge")).toHaveTextContent("No backend");
    expect(screen.getByTestId("status-badge")).toHaveClass("badge-stalled");
    rerender(<StatusBadge status="RUNNING" progress={progressFixture(20)} />);
    expect(screen.getByTestId("status-badge")).toHaveTextContent("Running");
  });
});

describe("ImageGrid", () => {
  const image = imageFixture;

  it("shows a single finished image whole, from the original, not a thumbnail", () => {
    render(<ImageGrid images={[image(0)]} />);
    expect(screen.getByTestId("result-image")).toHaveAttribute("src", "/images/h0");
  });

  it("shows several as thumbnails", () => {
    render(<ImageGrid images={[image(0), image(1)]} />);
    expect(screen.getAllByTestId("result-image").map((i) => i.getAttribute("src"))).toEqual([
      "/thumbs/256/h0",
      "/thumbs/256/h1",
    ]);
  });
});
