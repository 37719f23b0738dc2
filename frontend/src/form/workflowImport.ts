import { isPng, readPng, PngError } from "../png/png";
import { mergeValues, type FormValues, type LoraValue, type TemplateInfo } from "./values";

/**
 * A PNG made by ComfyUI or Safelight carries the API-format workflow it ran as its `prompt` text
 * chunk (and the editor's graph as `workflow`). The app does not see a template's node targets, so
 * it reads the workflow the way the API's parameter proposals do: by the common nodes (sampler,
 * its positive and negative text encoders, the latent size, the checkpoint and the LoRA loaders on
 * the model's path, an upscale factor), and fills the parameters of those names.
 */
export type ApiWorkflow = Record<string, { class_type: string; inputs: Record<string, unknown> }>;

export interface DroppedWorkflow {
  /** Where it came from: a PNG's text chunks, or a workflow saved as JSON. */
  source: "png" | "json";
  /** The API-format workflow, when there is one. */
  prompt: ApiWorkflow | null;
  /** The editor's workflow (or, failing that, the API one): what "save as a template" sends. */
  workflow: unknown;
}

const MAX_FILE_BYTES = 64 * 1024 * 1024;
const MAX_JSON_BYTES = 16 * 1024 * 1024;

/** Whether a document looks like the editor's save (ComfyUI's UI format): nodes and links lists. */
export const isUiWorkflow = (doc: unknown): boolean =>
  Boolean(doc) && typeof doc === "object" && Array.isArray((doc as { nodes?: unknown }).nodes);

export function isApiWorkflow(doc: unknown): doc is ApiWorkflow {
  if (!doc || typeof doc !== "object" || Array.isArray(doc)) return false;
  const nodes = Object.values(doc);
  return (
    nodes.length > 0 &&
    nodes.every(
      (n) => n && typeof n === "object" && typeof (n as { class_type?: unknown }).class_type === "string" && typeof (n as { inputs?: unknown }).inputs === "object",
    )
  );
}

const parseJson = (text: string | undefined): unknown => {
  if (text === undefined) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
};

/**
 * The workflows a dropped file carries: a PNG's `prompt`/`workflow` chunks, or a workflow JSON file
 * (ComfyUI's "Export (API)" or the editor's save). Null when it carries none; PngError when it is
 * neither a PNG nor JSON.
 */
export async function readDroppedFile(file: Blob): Promise<DroppedWorkflow | null> {
  if (file.size > MAX_FILE_BYTES) throw new PngError("the file is larger than 64 MB");
  const bytes = new Uint8Array(await file.arrayBuffer());
  if (!isPng(bytes)) {
    const start = bytes.findIndex((b) => b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09 && b !== 0xef && b !== 0xbb && b !== 0xbf);
    if (bytes[start] !== 0x7b) throw new PngError("neither a PNG nor a workflow (JSON)");
    if (bytes.length > MAX_JSON_BYTES) throw new PngError("the workflow is larger than 16 MB");
    const doc = parseJson(new TextDecoder().decode(bytes));
    if (isApiWorkflow(doc)) return { source: "json", prompt: doc, workflow: doc };
    return isUiWorkflow(doc) ? { source: "json", prompt: null, workflow: doc } : null;
  }
  const { text } = await readPng(bytes);
  const prompt = parseJson(text.get("prompt"));
  const workflow = parseJson(text.get("workflow"));
  const api = isApiWorkflow(prompt) ? prompt : null;
  if (!api && !workflow) return null;
  return { source: "png", prompt: api, workflow: workflow ?? api };
}

const SAMPLERS = new Set(["KSampler", "KSamplerAdvanced"]);
const TEXT_ENCODERS: Record<string, string> = { CLIPTextEncode: "text", CLIPTextEncodeSDXL: "text_g", CLIPTextEncodeFlux: "t5xxl" };
const LORA_LOADERS = new Set(["LoraLoader", "LoraLoaderModelOnly"]);
const CHECKPOINT_LOADERS: Record<string, string> = { CheckpointLoaderSimple: "ckpt_name", CheckpointLoader: "ckpt_name", UNETLoader: "unet_name" };
const IMAGE_LOADERS = new Set(["LoadImage"]);
const MASK_NODES = new Set(["LoadImageMask", "VAEEncodeForInpaint", "SetLatentNoiseMask", "InpaintModelConditioning"]);

const isLink = (v: unknown): v is [string, number] => Array.isArray(v) && v.length === 2 && typeof v[0] === "string";

function byId(workflow: ApiWorkflow, link: unknown) {
  return isLink(link) ? workflow[link[0]] : undefined;
}

/** A literal input, or the literal of the primitive node a link points at (one hop). */
function literal(workflow: ApiWorkflow, value: unknown): unknown {
  if (!isLink(value)) return value;
  const node = workflow[value[0]];
  if (!node) return undefined;
  const inputs = Object.values(node.inputs).filter((v) => !isLink(v));
  return inputs.length === 1 ? inputs[0] : undefined;
}

/** The prompt text behind a conditioning input, through nodes that pass conditioning on. */
function promptText(workflow: ApiWorkflow, link: unknown, depth = 0): string | undefined {
  const node = byId(workflow, link);
  if (!node || depth > 6) return undefined;
  const field = TEXT_ENCODERS[node.class_type];
  if (field) {
    const text = literal(workflow, node.inputs[field]);
    return typeof text === "string" ? text : undefined;
  }
  const next = node.inputs.conditioning ?? node.inputs.positive;
  return next === undefined ? undefined : promptText(workflow, next, depth + 1);
}

function mainSampler(workflow: ApiWorkflow) {
  const ids = Object.keys(workflow)
    .filter((id) => SAMPLERS.has(workflow[id]?.class_type ?? ""))
    .sort((a, b) => Number(a) - Number(b) || a.localeCompare(b));
  return ids.length ? workflow[ids[0] as string] : undefined;
}

/** Parameter values (by the API's field names) the workflow's common nodes hold. */
export function extractParameters(workflow: ApiWorkflow): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const put = (name: string, value: unknown) => {
    if (value !== undefined && value !== null && !isLink(value) && !(name in out)) out[name] = value;
  };
  const sampler = mainSampler(workflow);
  if (sampler) {
    const i = sampler.inputs;
    put("seed", literal(workflow, i.seed ?? i.noise_seed));
    put("steps", literal(workflow, i.steps));
    put("cfg", literal(workflow, i.cfg));
    put("sampler", literal(workflow, i.sampler_name));
    put("scheduler", literal(workflow, i.scheduler));
    put("denoise", literal(workflow, i.denoise));
    put("prompt", promptText(workflow, i.positive));
    put("negativePrompt", promptText(workflow, i.negative));
    const latent = byId(workflow, i.latent_image);
    if (latent?.class_type === "EmptyLatentImage" || latent?.class_type === "EmptySD3LatentImage") {
      put("width", literal(workflow, latent.inputs.width));
      put("height", literal(workflow, latent.inputs.height));
      put("batchSize", literal(workflow, latent.inputs.batch_size));
    }
    // The model's path back to the checkpoint: LoRAs in the order they apply.
    const loras: LoraValue[] = [];
    let node = byId(workflow, i.model);
    for (let hops = 0; node && hops < 32; hops++) {
      if (LORA_LOADERS.has(node.class_type)) {
        const name = literal(workflow, node.inputs.lora_name);
        const strength = literal(workflow, node.inputs.strength_model);
        if (typeof name === "string") loras.unshift({ name, strength: String(strength ?? 1) });
      }
      const checkpoint = CHECKPOINT_LOADERS[node.class_type];
      if (checkpoint) {
        put("checkpoint", literal(workflow, node.inputs[checkpoint]));
        break;
      }
      node = byId(workflow, node.inputs.model);
    }
    out.loras = loras;
  }
  for (const node of Object.values(workflow)) {
    if (node.class_type === "ImageScaleBy") {
      const factor = literal(workflow, node.inputs.scale_by);
      for (const name of ["factor", "scaleBy", "scale", "upscaleBy"]) put(name, factor);
    }
  }
  return out;
}

function shape(workflow: ApiWorkflow) {
  const classes = new Set(Object.values(workflow).map((n) => n.class_type));
  return {
    image: [...classes].some((c) => IMAGE_LOADERS.has(c)),
    mask: [...classes].some((c) => MASK_NODES.has(c)),
  };
}

/** How well a template fits: parameters it can take from the workflow, images and masks it has or lacks. */
function fit(template: TemplateInfo, found: Record<string, unknown>, kinds: { image: boolean; mask: boolean }): number {
  let score = 0;
  for (const p of template.params) {
    if (p.type === "IMAGE") score += kinds.image ? 3 : -4;
    else if (p.type === "MASK") score += kinds.mask ? 3 : -4;
    else if (p.name in found && !(p.name === "loras" && (found.loras as unknown[]).length === 0)) score += 1;
  }
  if (kinds.image && !template.params.some((p) => p.type === "IMAGE")) score -= 4;
  if (kinds.mask && !template.params.some((p) => p.type === "MASK")) score -= 2;
  return score;
}

export interface ImportResult {
  template: TemplateInfo;
  values: FormValues;
  /** Parameters set from the workflow. */
  filled: string[];
  /** IMAGE/MASK parameters left to choose: a PNG carries file names of another machine, not inputs. */
  needsInput: string[];
}

/**
 * The form for a dropped workflow: the selected template when it fits as well as any, else the best
 * fitting one; its values are the current ones with the workflow's parameters over them.
 */
export function importWorkflow(
  workflow: ApiWorkflow,
  templates: TemplateInfo[],
  selected: string,
  current: (template: TemplateInfo) => FormValues,
): ImportResult | null {
  const found = extractParameters(workflow);
  const kinds = shape(workflow);
  let best: TemplateInfo | null = null;
  let bestScore = -Infinity;
  const ordered = [...templates].sort((a, b) => Number(b.name === selected) - Number(a.name === selected));
  for (const t of ordered) {
    const score = fit(t, found, kinds);
    if (score > bestScore) {
      best = t;
      bestScore = score;
    }
  }
  if (!best) return null;
  const template = best;
  const known = new Set(template.params.map((p) => p.name));
  const mine = Object.fromEntries(Object.entries(found).filter(([k]) => known.has(k)));
  const merged = mergeValues(template, { ...current(template), ...mine });
  return {
    template,
    values: merged,
    // An empty LoRA list is set (the image was made without), but not news worth reporting.
    filled: Object.keys(mine).filter((k) => k !== "loras" || (mine.loras as unknown[]).length > 0),
    needsInput: template.params.filter((p) => p.type === "IMAGE" || p.type === "MASK").map((p) => p.name),
  };
}
