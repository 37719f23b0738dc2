import { act, fireEvent, render, screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { useState } from "react";
import { describe, expect, it, vi } from "vitest";
import { InputsContext, type InputsApi } from "../api/inputs";
import { decodeGrayPng } from "../png/png";
import { fakeInputs, uploaded } from "../test/inputs";
import { MaskPainter } from "./MaskPainter";

function Harness({ onChange }: { onChange: (id: string) => void }) {
  const [value, setValue] = useState("");
  return (
    <MaskPainter
      inputId="field-mask"
      name="mask"
      value={value}
      imageId="img-1"
      invalid={false}
      describedBy={undefined}
      saveDelayMs={0}
      onChange={(id) => {
        setValue(id);
        onChange(id);
      }}
    />
  );
}

/** The painter over a 40×30 image shown at twice its size (80×60 CSS pixels). */
async function renderPainter(api: InputsApi) {
  const onChange = vi.fn();
  render(
    <InputsContext.Provider value={api}>
      <Harness onChange={onChange} />
    </InputsContext.Provider>,
  );
  const img = await screen.findByAltText("The image the mask is painted over");
  Object.defineProperty(img, "naturalWidth", { value: 40 });
  Object.defineProperty(img, "naturalHeight", { value: 30 });
  fireEvent.load(img);
  const canvas = await screen.findByTestId("mask-canvas");
  canvas.getBoundingClientRect = () => ({ left: 0, top: 0, width: 80, height: 60, right: 80, bottom: 60, x: 0, y: 0, toJSON: () => ({}) });
  return { onChange, canvas, user: userEvent.setup() };
}

/** A stroke through CSS-pixel points. */
function stroke(canvas: HTMLElement, points: [number, number][]) {
  const [first, ...rest] = points as [[number, number], ...[number, number][]];
  fireEvent.pointerDown(canvas, { clientX: first[0], clientY: first[1], pointerId: 1, button: 0 });
  for (const [x, y] of rest) fireEvent.pointerMove(canvas, { clientX: x, clientY: y, pointerId: 1 });
  fireEvent.pointerUp(canvas, { pointerId: 1 });
}

async function mask(blob: Blob) {
  const { width, height, pixels } = await decodeGrayPng(new Uint8Array(await blob.arrayBuffer()));
  return { width, height, at: (x: number, y: number) => pixels[y * width + x], values: new Set(pixels) };
}

describe("MaskPainter", () => {
  it("paints, erases and clears; each save is a white-on-black PNG at the image's pixel size", async () => {
    const { api, sent } = fakeInputs([uploaded("mask-1"), uploaded("mask-2")]);
    const { onChange, canvas, user } = await renderPainter(api);
    expect(screen.getByTestId("mask-status")).toHaveTextContent("40×30 · Paint over what should change");
    expect(screen.getByRole("slider")).toHaveValue("4"); // a twentieth of the short side, at least 4 px

    // A horizontal stroke at image row 10, from x = 10 to 30 (CSS 20→60 at twice the size).
    stroke(canvas, [
      [20, 20],
      [40, 20],
      [60, 20],
    ]);
    await waitFor(() => expect(onChange).toHaveBeenCalledWith("mask-1"));
    expect(screen.getByTestId("mask-status")).toHaveTextContent("Mask saved");
    const first = await mask(sent[0]!.file);
    expect([first.width, first.height]).toEqual([40, 30]);
    expect(first.values).toEqual(new Set([0, 255]));
    for (const x of [8, 10, 20, 30, 32]) expect(first.at(x, 10)).toBe(255);
    expect(first.at(20, 25)).toBe(0);
    expect(first.at(0, 0)).toBe(0);
    expect(first.at(37, 10)).toBe(0);
    expect(sent[0]!.options.filename).toBe("mask.png");
    expect(sent[0]!.file.type).toBe("image/png");

    // The eraser takes the left end of the stroke away.
    await user.click(screen.getByRole("button", { name: "Eraser" }));
    expect(screen.getByRole("button", { name: "Eraser" })).toHaveAttribute("aria-pressed", "true");
    stroke(canvas, [[20, 20]]);
    await waitFor(() => expect(onChange).toHaveBeenCalledWith("mask-2"));
    const second = await mask(sent[1]!.file);
    expect([second.width, second.height]).toEqual([40, 30]);
    expect(second.at(10, 10)).toBe(0);
    expect(second.at(30, 10)).toBe(255);

    // Clear: no mask, nothing uploaded.
    await user.click(screen.getByRole("button", { name: "Clear" }));
    expect(onChange).toHaveBeenLastCalledWith("");
    expect(sent).toHaveLength(2);
    expect(screen.getByTestId("mask-status")).toHaveTextContent("Paint over what should change");
  });

  it("shows the server's typed error when the mask can't be stored", async () => {
    const { api } = fakeInputs([{ ok: false, status: 429, code: "RATE_LIMITED", message: "Too many uploads; try again in a minute." }]);
    const { onChange, canvas } = await renderPainter(api);
    await act(async () => stroke(canvas, [[30, 30]]));
    expect(await screen.findByRole("alert")).toHaveTextContent("Too many uploads; try again in a minute. (RATE_LIMITED)");
    expect(onChange).not.toHaveBeenCalledWith(expect.stringMatching(/./));
  });

  it("asks for the image first when none is chosen", () => {
    render(
      <MaskPainter inputId="m" name="mask" value="" imageId="" invalid={false} describedBy={undefined} onChange={() => {}} />,
    );
    expect(screen.getByText("Choose the image first: the mask is painted over it.")).toBeInTheDocument();
  });
});
