import { describe, expect, it } from "vitest";
import { validate } from "./validation";
import { catalog, param, template } from "../test/fixtures";
import { loadValues, mergeValues, randomSeed, saveValues, toInput, valuesFromParameters, type TemplateInfo } from "./values";

const valid = () => ({ ...mergeValues(template, null), prompt: "a cat" });

describe("validate", () => {
  it("accepts the defaults with a prompt", () => {
    expect(validate(template, valid(), catalog)).toEqual({});
  });

  it("requires the prompt and limits its length", () => {
    expect(validate(template, { ...valid(), prompt: "  " }, catalog)).toEqual({ prompt: "is required" });
    expect(validate(template, { ...valid(), prompt: "x".repeat(21) }, catalog)).toEqual({
      prompt: "must be at most 20 characters",
    });
  });

  it("mirrors the integer limits: range, whole numbers, multiples", () => {
    expect(validate(template, { ...valid(), width: "100" }, catalog)).toEqual({ width: "must be a multiple of 8" });
    expect(validate(template, { ...valid(), width: "4096" }, catalog)).toEqual({ width: "must be between 64 and 2048" });
    expect(validate(template, { ...valid(), width: "64.5" }, catalog)).toEqual({ width: "must be a whole number" });
    expect(validate(template, { ...valid(), width: "abc" }, catalog)).toEqual({ width: "must be a number" });
  });

  it("checks floats, seeds and choices from the catalogue", () => {
    expect(validate(template, { ...valid(), cfg: "31" }, catalog)).toEqual({ cfg: "must be between 0 and 30" });
    expect(validate(template, { ...valid(), seed: "-1" }, catalog).seed).toMatch(/between 0 and/);
    expect(validate(template, { ...valid(), seed: "1.5" }, catalog)).toEqual({ seed: "must be a whole number" });
    expect(validate(template, { ...valid(), sampler: "nope" }, catalog)).toEqual({
      sampler: "nope is not one of the offered choices",
    });
  });

  it("names LoRA errors the way the API does", () => {
    const loras = [
      { name: "detail.safetensors", strength: "5" },
      { name: "", strength: "1" },
      { name: "detail.safetensors", strength: "1" },
    ];
    expect(validate(template, { ...valid(), loras }, catalog)).toEqual({
      loras: "at most 2 LoRAs",
      "loras[0].strength": "must be between -4 and 4",
      "loras[1].name": "choose a LoRA",
    });
  });
});

describe("validate: limits come from the parameter descriptions only", () => {
  const withParams = (...params: TemplateInfo["params"]): TemplateInfo => ({ ...template, params });
  const lora = (strength: string) => ({ name: "detail.safetensors", strength });

  it("bounds LoRA strengths and counts by the description's min, max and maxItems", () => {
    const narrow = withParams(param({ name: "loras", type: "LORAS", min: 0, max: 2, maxItems: 1, catalog: "LORAS" }));
    expect(validate(narrow, { loras: [lora("2.5"), lora("-0.5")] }, catalog)).toEqual({
      loras: "at most 1 LoRAs",
      "loras[0].strength": "must be between 0 and 2",
      "loras[1].strength": "must be between 0 and 2",
    });
  });

  it("adds no bound of its own where the description gives none", () => {
    const open = withParams(
      param({ name: "loras", type: "LORAS", catalog: "LORAS" }),
      param({ name: "seed", type: "SEED" }),
      param({ name: "steps", type: "INT" }),
    );
    const many = Array.from({ length: 12 }, () => lora("100"));
    expect(validate(open, { loras: many, seed: "-5", steps: "100000" }, catalog)).toEqual({});
  });

  it("takes a seed's range from its description, and refuses integers a browser cannot send exactly", () => {
    const seeded = withParams(param({ name: "seed", type: "SEED", min: 10, max: 100 }));
    expect(validate(seeded, { seed: "101" }, catalog)).toEqual({ seed: "must be between 10 and 100" });
    expect(validate(seeded, { seed: "9" }, catalog)).toEqual({ seed: "must be between 10 and 100" });
    const wide = withParams(param({ name: "seed", type: "SEED" }));
    expect(validate(wide, { seed: "100000000000000000000" }, catalog)).toEqual({ seed: "is too large to send exactly" });
  });
});

describe("randomSeed", () => {
  it("stays within the parameter's bounds", () => {
    expect(randomSeed({ min: 5, max: 7 }, () => 0.999)).toBe("7");
    expect(randomSeed({ min: 5, max: 7 }, () => 0)).toBe("5");
    expect(randomSeed({ min: null, max: null }, () => 0.5)).toBe(String(2 ** 31));
  });
});

describe("toInput", () => {
  it("leaves out empty optional fields, parses numbers and puts unknown parameters in extra", () => {
    const input = toInput(template, {
      ...valid(),
      seed: "",
      width: "640",
      loras: [{ name: "detail.safetensors", strength: "0.5" }],
    });
    expect(input).toEqual({
      template: "txt2img",
      prompt: "a cat",
      width: 640,
      cfg: 7,
      sampler: "euler",
      loras: [{ name: "detail.safetensors", strength: 0.5 }],
      extra: { denoise: 1 },
    });
  });
});

describe("persistence", () => {
  it("round-trips through storage and ignores what the template no longer has", () => {
    saveValues("txt2img", { ...valid(), width: "768", gone: "x" });
    const loaded = loadValues(template);
    expect(loaded.width).toBe("768");
    expect(loaded).not.toHaveProperty("gone");
  });

  it("survives garbage in storage", () => {
    localStorage.setItem("safelight.form.txt2img", "{not json");
    expect(loadValues(template).width).toBe("512");
  });

  it("turns stored parameters (snake_case) into form values for 'use again'", () => {
    const values = valuesFromParameters(template, {
      prompt: "a dog",
      negative_prompt: "blur",
      seed: 42,
      loras: [{ name: "detail.safetensors", strength: 0.7 }],
    });
    expect(values).toMatchObject({
      prompt: "a dog",
      negativePrompt: "blur",
      seed: "42",
      loras: [{ name: "detail.safetensors", strength: "0.7" }],
    });
  });
});
