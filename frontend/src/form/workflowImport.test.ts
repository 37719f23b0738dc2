import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { param, template as txt2img } from "../test/fixtures";
import { defaultValues, type TemplateInfo } from "./values";
import { extractParameters, importWorkflow, readDroppedFile, type ApiWorkflow } from "./workflowImport";

const fixture = (name: string) => new Blob([readFileSync(join(import.meta.dirname, "..", "png", "fixtures", name))]);

const img2img: TemplateInfo = {
  ...txt2img,
  name: "img2img",
  title: "Image to image",
  params: [
    param({ name: "image", type: "IMAGE", required: true }),
    param({ name: "prompt", type: "STRING", required: true }),
    param({ name: "denoise", type: "FLOAT", default: 0.6, min: 0, max: 1 }),
    param({ name: "seed", type: "SEED" }),
  ],
};
const upscale: TemplateInfo = {
  ...txt2img,
  name: "upscale",
  title: "Upscale",
  params: [param({ name: "image", type: "IMAGE", required: true }), param({ name: "factor", type: "FLOAT", default: 2, min: 1, max: 4 })],
};
const templates = [txt2img, img2img, upscale];

describe("a dropped PNG's workflow", () => {
  it("fills txt2img from the prompt chunk of a real ComfyUI PNG", async () => {
    const dropped = await readDroppedFile(fixture("comfyui.png"));
    expect(dropped?.prompt).not.toBeNull();
    expect((dropped?.workflow as { nodes: unknown[] }).nodes).toHaveLength(1);
    const result = importWorkflow(dropped!.prompt!, templates, "upscale", defaultValues);
    expect(result?.template.name).toBe("txt2img");
    expect(result?.values).toMatchObject({
      prompt: "a lighthouse at dusk",
      negativePrompt: "blurry",
      seed: "123456789",
      cfg: "6.5",
      sampler: "dpmpp_2m",
      width: "640",
      checkpoint: "b.safetensors",
      denoise: "1",
      loras: [],
    });
    expect(result?.filled).toEqual(expect.arrayContaining(["prompt", "seed", "width", "checkpoint"]));
    expect(result?.needsInput).toEqual([]);
  });

  it("has none in a PNG without workflow chunks, and refuses what is not a PNG", async () => {
    expect(await readDroppedFile(fixture("texts.png"))).toBeNull();
    await expect(readDroppedFile(new Blob(["not a png at all"]))).rejects.toThrow("neither a PNG nor a workflow (JSON)");
  });

  it("reads workflow JSON files: an API export fills the form, an editor save is only a workflow", async () => {
    const api = { "3": { class_type: "KSampler", inputs: { seed: 5, steps: 3 } } };
    const fromApi = await readDroppedFile(new Blob([` \n${JSON.stringify(api)}`], { type: "application/json" }));
    expect(fromApi).toEqual({ source: "json", prompt: api, workflow: api });
    const ui = { last_node_id: 1, nodes: [{ id: 1, type: "KSampler" }], links: [] };
    expect(await readDroppedFile(new Blob([JSON.stringify(ui)]))).toEqual({ source: "json", prompt: null, workflow: ui });
    expect(await readDroppedFile(new Blob(['{"a": 1}']))).toBeNull();
  });

  it("picks the template whose inputs fit: an image loader goes to img2img, a scale factor to upscale", () => {
    const workflow: ApiWorkflow = {
      "1": { class_type: "LoadImage", inputs: { image: "photo.png" } },
      "2": { class_type: "CheckpointLoaderSimple", inputs: { ckpt_name: "a.safetensors" } },
      "3": { class_type: "LoraLoader", inputs: { model: ["2", 0], clip: ["2", 1], lora_name: "detail.safetensors", strength_model: 0.7, strength_clip: 1 } },
      "4": { class_type: "CLIPTextEncode", inputs: { text: "oil painting", clip: ["3", 1] } },
      "5": { class_type: "VAEEncode", inputs: { pixels: ["1", 0], vae: ["2", 2] } },
      "6": { class_type: "PrimitiveNode", inputs: { value: 42 } },
      "7": { class_type: "KSampler", inputs: { model: ["3", 0], positive: ["4", 0], negative: ["4", 0], latent_image: ["5", 0], seed: ["6", 0], denoise: 0.45 } },
    };
    expect(extractParameters(workflow)).toMatchObject({ seed: 42, denoise: 0.45, prompt: "oil painting", checkpoint: "a.safetensors", loras: [{ name: "detail.safetensors", strength: "0.7" }] });
    const result = importWorkflow(workflow, templates, "txt2img", defaultValues);
    expect(result?.template.name).toBe("img2img");
    expect(result?.values).toMatchObject({ prompt: "oil painting", denoise: "0.45", seed: "42", image: "" });
    expect(result?.needsInput).toEqual(["image"]);

    const scale: ApiWorkflow = {
      "1": { class_type: "LoadImage", inputs: { image: "x.png" } },
      "2": { class_type: "ImageScaleBy", inputs: { image: ["1", 0], upscale_method: "lanczos", scale_by: 3 } },
      "3": { class_type: "SaveImage", inputs: { images: ["2", 0] } },
    };
    expect(importWorkflow(scale, templates, "txt2img", defaultValues)?.values).toMatchObject({ factor: "3" });
  });
});
