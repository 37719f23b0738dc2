import type { MockLink } from "@apollo/client/testing";
import { MockedProvider } from "@apollo/client/testing/react";
import { cleanup, render, screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import { createCache } from "../api/client";
import { CreateGenerationMutation } from "../api/operations";
import { catalog, generationFixture, param, template } from "../test/fixtures";
import { InputsContext } from "../api/inputs";
import { fakeInputs, uploaded } from "../test/inputs";
import { GenerateForm } from "./GenerateForm";

type Mock = MockLink.MockedResponse;

function renderForm(mocks: Mock[] = [], onCreated = vi.fn(), templates = [template]) {
  render(
    <MockedProvider mocks={mocks} cache={createCache()}>
      <GenerateForm templates={templates} catalog={catalog} onCreated={onCreated} />
    </MockedProvider>,
  );
  return { onCreated, user: userEvent.setup() };
}

const createMock = (result: object, seen?: (vars: Record<string, unknown>) => void): Mock => ({
  request: {
    query: CreateGenerationMutation,
    variables: (vars: Record<string, unknown>) => {
      seen?.(vars);
      return true;
    },
  },
  result: { data: { createGeneration: result } },
});

describe("GenerateForm", () => {
  it("builds a labelled control for every parameter, with catalogue choices", () => {
    renderForm();
    for (const label of ["Prompt", "Negative prompt", "Checkpoint", "Width", "CFG scale", "Sampler", "Seed", "Denoise"]) {
      expect(screen.getByLabelText(label, { exact: true })).toBeInTheDocument();
    }
    const sampler = screen.getByLabelText("Sampler") as HTMLSelectElement;
    expect([...sampler.options].map((o) => o.value)).toEqual(["", "euler", "dpmpp_2m"]);
    expect(screen.getByLabelText("Width")).toHaveValue(512);
  });

  it("shows a client-side error at the field and focuses it instead of submitting", async () => {
    const { user, onCreated } = renderForm();
    await user.click(screen.getByRole("button", { name: "Generate" }));
    const prompt = screen.getByLabelText("Prompt", { exact: true });
    expect(prompt).toHaveAttribute("aria-invalid", "true");
    expect(prompt).toHaveAccessibleDescription(/is required/);
    await waitFor(() => expect(prompt).toHaveFocus());
    expect(onCreated).not.toHaveBeenCalled();
  });

  it("puts the API's typed validation errors next to the fields they name", async () => {
    const { user } = renderForm([
      createMock({
        __typename: "ValidationError",
        message: "invalid parameters",
        errors: [
          { __typename: "FieldError", field: "width", message: "width * height exceeds the limit" },
          { __typename: "FieldError", field: "loras[0].strength", message: "must be between -4 and 4" },
          { __typename: "FieldError", field: "mystery", message: "unknown parameter" },
        ],
      }),
    ]);
    await user.type(screen.getByLabelText("Prompt", { exact: true }), "a cat");
    await user.click(screen.getByRole("button", { name: "Add LoRA" }));
    await user.click(screen.getByRole("button", { name: "Generate" }));
    expect(await screen.findByText("width * height exceeds the limit")).toHaveAttribute("data-field", "width");
    expect(screen.getByLabelText("Width")).toHaveAttribute("aria-invalid", "true");
    expect(screen.getByText("must be between -4 and 4")).toHaveAttribute("data-field", "loras[0].strength");
    expect(screen.getByRole("alert")).toHaveTextContent("mystery: unknown parameter");

    await user.clear(screen.getByLabelText("Width"));
    await user.type(screen.getByLabelText("Width"), "256");
    expect(screen.queryByText("width * height exceeds the limit")).toBeNull();
  });

  it("submits typed input, reports the new id and keeps the inputs for next time", async () => {
    let sent: Record<string, unknown> = {};
    const { user, onCreated } = renderForm([
      createMock({ __typename: "GenerationPayload", created: true, generation: generationFixture({ id: "new-id" }) }, (v) => (sent = v)),
    ]);
    await user.type(screen.getByLabelText("Prompt", { exact: true }), "a lighthouse");
    await user.click(screen.getByRole("button", { name: "Random seed" }));
    const seed = (screen.getByLabelText("Seed") as HTMLInputElement).value;
    expect(seed).toMatch(/^\d+$/);
    await user.click(screen.getByRole("button", { name: "Generate" }));
    await waitFor(() => expect(onCreated).toHaveBeenCalledWith("new-id"));
    expect(sent.input).toMatchObject({ prompt: "a lighthouse", width: 512, seed: Number(seed), template: "txt2img" });
    expect(typeof sent.key).toBe("string");
    expect(JSON.parse(localStorage.getItem("safelight.form.txt2img") ?? "{}")).toMatchObject({ prompt: "a lighthouse", seed });
  });

  it("shows quota errors as a form message", async () => {
    const { user } = renderForm([createMock({ __typename: "QuotaExceededError", message: "too many active", limit: 4 })]);
    await user.type(screen.getByLabelText("Prompt", { exact: true }), "a cat");
    await user.click(screen.getByRole("button", { name: "Generate" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("too many active (limit 4)");
  });

  it("takes the LoRA editor's bounds from the parameter description", async () => {
    const narrow = {
      ...template,
      params: [
        param({ name: "prompt", type: "STRING", required: true }),
        param({ name: "loras", type: "LORAS", default: [], min: -1, max: 0.5, maxItems: 1, catalog: "LORAS" }),
      ],
    };
    const { user } = renderForm([], vi.fn(), [narrow]);
    await user.click(screen.getByRole("button", { name: "Add LoRA" }));
    const strength = screen.getByLabelText("Strength");
    expect(strength).toHaveAttribute("min", "-1");
    expect(strength).toHaveAttribute("max", "0.5");
    expect(strength).toHaveValue(0.5); // LoraInput's default of 1, inside the parameter's bounds
    expect(screen.getByRole("button", { name: "Add LoRA" })).toBeDisabled();
    await user.clear(strength);
    await user.type(strength, "2");
    await user.click(screen.getByRole("button", { name: "Generate" }));
    expect(await screen.findByText("must be between -1 and 0.5")).toHaveAttribute("data-field", "loras[0].strength");
  });

  it("builds IMAGE, MASK, BOOLEAN and multi-line STRING fields and sends the input id and the switch", async () => {
    const inpaint = {
      ...template,
      name: "inpaint",
      title: "Inpaint",
      params: [
        param({ name: "prompt", type: "STRING", required: true, maxLength: 100, multiline: true }),
        param({ name: "tiled", type: "BOOLEAN", default: false }),
        param({ name: "mask", type: "MASK", required: true }),
        param({ name: "image", type: "IMAGE", required: true }),
      ],
    };
    let sent: Record<string, unknown> = {};
    const { api } = fakeInputs([uploaded("in-9")]);
    const onCreated = vi.fn();
    render(
      <MockedProvider
        mocks={[createMock({ __typename: "GenerationPayload", created: true, generation: generationFixture({ id: "ip" }) }, (v) => (sent = v))]}
        cache={createCache()}
      >
        <InputsContext.Provider value={api}>
          <GenerateForm templates={[inpaint]} catalog={catalog} onCreated={onCreated} />
        </InputsContext.Provider>
      </MockedProvider>,
    );
    const user = userEvent.setup();
    expect(screen.getByLabelText("Prompt", { exact: true }).tagName).toBe("TEXTAREA");
    const fields = [...document.querySelectorAll(".field")].map((f) => f.className.match(/field-(\w+)/)?.[1]);
    expect(fields.slice(0, 3)).toEqual(["image", "mask", "string"]); // the picture, its mask, then the prompt
    expect(screen.getByText("Choose the image first: the mask is painted over it.")).toBeInTheDocument();
    const toggle = screen.getByRole("switch", { name: "Tiled" });
    expect(toggle).not.toBeChecked();
    await user.click(toggle);
    expect(toggle).toBeChecked();

    await user.type(screen.getByLabelText("Prompt", { exact: true }), "a door");
    await user.click(screen.getByRole("button", { name: "Generate" }));
    expect(await screen.findByText("choose an image")).toHaveAttribute("data-field", "image");
    expect(screen.getByText("paint a mask")).toHaveAttribute("data-field", "mask");
    expect(onCreated).not.toHaveBeenCalled();

    await user.upload(screen.getByLabelText("Choose file…"), new File(["x"], "door.png", { type: "image/png" }));
    expect(await screen.findByAltText("The image the mask is painted over")).toHaveAttribute("src", "blob:input-in-9");
    expect(screen.queryByText("choose an image")).toBeNull();
    expect(JSON.parse(localStorage.getItem("safelight.form.inpaint") ?? "{}")).toMatchObject({ image: "in-9", tiled: "true" });

    const optional = { ...inpaint, params: inpaint.params.map((p) => (p.name === "mask" ? { ...p, required: false } : p)) };
    cleanupAndRender(optional, api, (v) => (sent = v));
    await userEvent.setup().click(screen.getByRole("button", { name: "Generate" }));
    await waitFor(() => expect(sent.input).toMatchObject({ template: "inpaint", prompt: "a door", extra: { image: "in-9", tiled: true } }));
    expect((sent.input as { extra: Record<string, unknown> }).extra).not.toHaveProperty("mask");
  });
});

function cleanupAndRender(t: typeof template, api: ReturnType<typeof fakeInputs>["api"], seen: (v: Record<string, unknown>) => void) {
  cleanup();
  render(
    <MockedProvider mocks={[createMock({ __typename: "GenerationPayload", created: true, generation: generationFixture({ id: "ip2" }) }, seen)]} cache={createCache()}>
      <InputsContext.Provider value={api}>
        <GenerateForm templates={[t]} catalog={catalog} onCreated={() => {}} />
      </InputsContext.Provider>
    </MockedProvider>,
  );
}
