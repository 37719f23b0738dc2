import { MockedProvider } from "@apollo/client/testing/react";
import { act, fireEvent, render, screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { useState } from "react";
import { describe, expect, it, vi } from "vitest";
import { createCache } from "../api/client";
import { InputsContext, type InputsApi, type UploadResult } from "../api/inputs";
import { fakeInputs, uploaded } from "../test/inputs";
import { ImageDrop } from "./ImageDrop";

function Harness({ onChange, catchPaste = false }: { onChange: (id: string) => void; catchPaste?: boolean }) {
  const [value, setValue] = useState("");
  return (
    <>
      <label htmlFor="field-image">Image</label>
      <textarea aria-label="Prompt" />
      <ImageDrop
        catchPaste={catchPaste}
        inputId="field-image"
        name="image"
        value={value}
        invalid={false}
        describedBy={undefined}
        onChange={(id) => {
          setValue(id);
          onChange(id);
        }}
        onBlur={() => {}}
      />
    </>
  );
}

function renderDrop(api: InputsApi, catchPaste = false) {
  const onChange = vi.fn();
  render(
    <MockedProvider cache={createCache()}>
      <InputsContext.Provider value={api}>
        <Harness onChange={onChange} catchPaste={catchPaste} />
      </InputsContext.Provider>
    </MockedProvider>,
  );
  return { onChange, zone: screen.getByTestId("drop-image"), user: userEvent.setup() };
}

const png = (name = "cat.png") => new File([new Uint8Array([137, 80, 78, 71])], name, { type: "image/png" });

describe("ImageDrop", () => {
  it("uploads a file chosen with the picker, shows progress, then the preview and the input's size", async () => {
    let answer: (r: UploadResult) => void = () => {};
    const { api, sent } = fakeInputs([new Promise((resolve) => (answer = resolve))]);
    const { onChange, user } = renderDrop(api);
    await user.upload(screen.getByLabelText("Choose file…"), png());
    const bar = await screen.findByRole("progressbar", { name: "Uploading" });
    expect(bar).toHaveAttribute("aria-valuenow", "50");
    expect(screen.getByText(/Uploading cat.png… 50 %/)).toBeInTheDocument();
    await act(async () => answer(uploaded("in-1")));
    expect(onChange).toHaveBeenCalledWith("in-1");
    expect(sent[0]?.options.filename).toBe("cat.png");
    expect(await screen.findByTestId("preview-image")).toHaveAttribute("src", "blob:input-in-1");
    expect(screen.getByText(/40×30/)).toBeInTheDocument();
    expect(screen.queryByRole("progressbar")).toBeNull();
    expect(api.remember).toHaveBeenCalledWith("in-1", sent[0]?.file);
  });

  it("takes a dropped file, and stops the drop from reaching the page", async () => {
    const { api, sent } = fakeInputs([uploaded("in-2")]);
    const { onChange, zone } = renderDrop(api);
    const page = vi.fn();
    document.addEventListener("drop", page);
    const file = png("dropped.png");
    fireEvent.dragOver(zone, { dataTransfer: { types: ["Files"], files: [file], dropEffect: "none" } });
    expect(zone).toHaveClass("drop-zone-active");
    fireEvent.drop(zone, { dataTransfer: { types: ["Files"], files: [file] } });
    await waitFor(() => expect(onChange).toHaveBeenCalledWith("in-2"));
    expect(sent[0]?.file).toBe(file);
    expect(page).not.toHaveBeenCalled();
    document.removeEventListener("drop", page);
  });

  it("takes a pasted image", async () => {
    const { api, sent } = fakeInputs([uploaded("in-3")]);
    const { onChange, zone } = renderDrop(api);
    const file = png("pasted.png");
    fireEvent.paste(zone, { clipboardData: { files: [file], types: ["Files"] } });
    await waitFor(() => expect(onChange).toHaveBeenCalledWith("in-3"));
    expect(sent[0]?.file).toBe(file);
  });

  it("as the form's main image, takes an image pasted anywhere but into a text field", async () => {
    const { api, sent } = fakeInputs([uploaded("in-5")]);
    const { onChange } = renderDrop(api, true);
    const file = png("clipboard.png");
    fireEvent.paste(screen.getByLabelText("Prompt"), { clipboardData: { files: [file], types: ["Files"] } });
    await act(async () => new Promise((r) => setTimeout(r, 10)));
    expect(sent).toHaveLength(0);
    fireEvent.paste(document.body, { clipboardData: { files: [file], types: ["Files"] } });
    await waitFor(() => expect(onChange).toHaveBeenCalledWith("in-5"));
    expect(sent[0]?.file).toBe(file);
  });

  it("ignores a paste outside it unless it is the main image", async () => {
    const { api, sent } = fakeInputs([uploaded("in-6")]);
    renderDrop(api);
    fireEvent.paste(document.body, { clipboardData: { files: [png()], types: ["Files"] } });
    await act(async () => new Promise((r) => setTimeout(r, 10)));
    expect(sent).toHaveLength(0);
  });

  it("shows the server's typed error and keeps no value", async () => {
    const { api } = fakeInputs([
      { ok: false, status: 422, code: "TOO_MANY_PIXELS", message: "The image has 20000×20000 pixels; at most 16777216 are allowed." },
    ]);
    const { onChange, user } = renderDrop(api);
    await user.upload(screen.getByLabelText("Choose file…"), png("huge.png"));
    const error = await screen.findByTestId("upload-error-image");
    expect(error).toHaveTextContent("The image has 20000×20000 pixels; at most 16777216 are allowed. (TOO_MANY_PIXELS)");
    expect(error).toHaveAttribute("role", "alert");
    expect(onChange).not.toHaveBeenCalled();
    expect(screen.queryByTestId("preview-image")).toBeNull();
  });

  it("removes the chosen image", async () => {
    const { api } = fakeInputs([uploaded("in-4")]);
    const { onChange, user } = renderDrop(api);
    await user.upload(screen.getByLabelText("Choose file…"), png());
    await screen.findByTestId("preview-image");
    await user.click(screen.getByRole("button", { name: "Remove" }));
    expect(onChange).toHaveBeenLastCalledWith("");
    expect(screen.queryByTestId("preview-image")).toBeNull();
  });
});
