import type { MockLink } from "@apollo/client/testing";
import { MockedProvider } from "@apollo/client/testing/react";
import { render, screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import { createCache } from "../api/client";
import { CreateGenerationMutation } from "../api/operations";
import { catalog, generationFixture, param, template } from "../test/fixtures";
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
});
