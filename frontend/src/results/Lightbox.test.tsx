import { fireEvent, render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { useState } from "react";
import { describe, expect, it, vi } from "vitest";
import { imageFixture } from "../test/fixtures";
import { Lightbox, lightboxKey } from "./Lightbox";
import type { Output } from "./OutputView";

const outputs: Output[] = [
  { ...imageFixture(0), seedValue: 11, width: 512, height: 384 },
  { ...imageFixture(1), seedValue: 12, batchIndex: 1 },
  { ...imageFixture(2), kind: "VIDEO", mime: "video/mp4", durationSeconds: 2.5, frames: 60 },
  { ...imageFixture(3), kind: "AUDIO", mime: "audio/wav", width: null, height: null, durationSeconds: 1.25 } as unknown as Output,
  { ...imageFixture(4), kind: "TEXT", mime: "text/plain", text: "caption: a red fox\nin snow", width: null, height: null } as unknown as Output,
];

function Harness({ onClose, start = 0 }: { onClose: () => void; start?: number }) {
  const [index, setIndex] = useState(start);
  return <Lightbox outputs={outputs} index={index} origin={null} onIndex={setIndex} onClose={onClose} actions={false} />;
}

describe("Lightbox", () => {
  it("moves with ←/→ (not past the ends), says each output's seed and batch index, and closes on Esc", () => {
    const onClose = vi.fn();
    render(<Harness onClose={onClose} />);
    const dialog = screen.getByRole("dialog", { name: "Result 1 of 5" });
    expect(dialog).toHaveFocus();
    expect(screen.getByTestId("lightbox-meta")).toHaveTextContent("Image · seed 11 · batch 0 · 512×384");
    expect(screen.getByRole("button", { name: "Previous result" })).toBeDisabled();
    fireEvent.keyDown(dialog, { key: "ArrowLeft" });
    expect(screen.getByTestId("lightbox-count")).toHaveTextContent("1 / 5");
    fireEvent.keyDown(dialog, { key: "ArrowRight" });
    expect(screen.getByTestId("lightbox-count")).toHaveTextContent("2 / 5");
    expect(screen.getByTestId("lightbox-meta")).toHaveTextContent("seed 12 · batch 1");
    expect(screen.getByTestId("download")).toHaveAttribute("href", "/images/g1/1?download=1");
    expect(screen.getByTestId("download")).toHaveAttribute("download");
    for (let i = 0; i < 6; i++) fireEvent.keyDown(document.body, { key: "ArrowRight" });
    expect(screen.getByTestId("lightbox-count")).toHaveTextContent("5 / 5");
    expect(screen.getByRole("button", { name: "Next result" })).toBeDisabled();
    expect(onClose).not.toHaveBeenCalled();
    fireEvent.keyDown(dialog, { key: "Escape" });
    expect(onClose).toHaveBeenCalledTimes(1);
  });

  it("zooms with the keys and the picture: fit, then 100 %, 200 %, back to fit", async () => {
    render(<Harness onClose={() => {}} />);
    const zoom = () => screen.getByRole("group", { name: "Zoom" });
    expect(zoom()).toHaveTextContent("Fit");
    fireEvent.keyDown(document.body, { key: "+" });
    expect(zoom()).toHaveTextContent("200 %");
    fireEvent.keyDown(document.body, { key: "-" });
    expect(zoom()).toHaveTextContent("100 %");
    fireEvent.keyDown(document.body, { key: "0" });
    expect(zoom()).toHaveTextContent("Fit");
    await userEvent.setup().click(screen.getByRole("img", { name: /Result 1, seed 11/ }));
    expect(zoom()).toHaveTextContent("100 %");
    expect(screen.getByTestId("lightbox").querySelector(".lightbox-zoomed")).not.toBeNull();
    fireEvent.keyDown(document.body, { key: "ArrowRight" }); // another output starts fitted
    expect(zoom()).toHaveTextContent("Fit");
  });

  it("shows video and audio with controls and text as preformatted text", () => {
    const { unmount } = render(<Harness onClose={() => {}} start={2} />);
    expect(screen.getByTestId("result-video")).toHaveAttribute("controls");
    expect(screen.getByTestId("lightbox-meta")).toHaveTextContent("Video · seed 1 · batch 2 · 64×64 · 60 frames · 2.5 s");
    fireEvent.keyDown(document.body, { key: "ArrowRight" });
    expect(screen.getByTestId("result-audio")).toHaveAttribute("controls");
    fireEvent.keyDown(document.body, { key: "ArrowRight" });
    const text = screen.getByTestId("result-text");
    expect(text.tagName).toBe("PRE");
    expect(text).toHaveTextContent("caption: a red fox in snow");
    expect(screen.queryByRole("group", { name: "Zoom" })).toBeNull();
    unmount();
    expect(document.body.style.overflow).toBe("");
  });

  it("leaves keys typed into its own fields alone", () => {
    expect(lightboxKey("ArrowLeft")).toBe("prev");
    expect(lightboxKey("a")).toBeNull();
    const onClose = vi.fn();
    render(<Harness onClose={onClose} />);
    const input = document.createElement("input");
    screen.getByTestId("lightbox").appendChild(input);
    fireEvent.keyDown(input, { key: "ArrowRight" });
    expect(screen.getByTestId("lightbox-count")).toHaveTextContent("1 / 5");
    fireEvent.keyDown(input, { key: "Escape" });
    expect(onClose).toHaveBeenCalled();
  });

  it("keeps Tab inside the dialog", async () => {
    const outside = document.createElement("button");
    outside.textContent = "behind";
    document.body.prepend(outside);
    render(<Harness onClose={() => {}} />);
    const user = userEvent.setup();
    const close = screen.getByRole("button", { name: "Close" });
    const download = screen.getByTestId("download");
    download.focus();
    await user.tab(); // the last control: round to the first
    expect(screen.getByTestId("lightbox")).toContainElement(document.activeElement as HTMLElement);
    expect(document.activeElement).not.toBe(outside);
    close.focus();
    for (let i = 0; i < 12; i++) {
      await user.tab({ shift: i % 2 === 0 });
      expect(screen.getByTestId("lightbox")).toContainElement(document.activeElement as HTMLElement);
    }
    outside.remove();
  });
});
