import type { FormDataQuery, GenerationInput } from "../gql/graphql";

export type TemplateInfo = FormDataQuery["templates"][number];
export type ParamInfo = TemplateInfo["params"][number];
export type CatalogInfo = FormDataQuery["catalog"];

export interface LoraValue {
  name: string;
  strength: string;
}

/**
 * What the form holds: text as typed (numbers are parsed on submit), LoRAs as rows, BOOLEAN as
 * "true"/"false", IMAGE and MASK as the input id an upload answered ("" when none).
 */
export type FormValues = Record<string, string | LoraValue[]>;

/** GenerationInput's own fields; any other template parameter goes into `extra`. */
const INPUT_FIELDS = [
  "prompt",
  "negativePrompt",
  "checkpoint",
  "loras",
  "width",
  "height",
  "steps",
  "cfg",
  "sampler",
  "scheduler",
  "seed",
  "batchSize",
] as const satisfies readonly Exclude<keyof GenerationInput, "template" | "extra">[];

const inputFields: ReadonlySet<string> = new Set(INPUT_FIELDS);

/** The template's first IMAGE parameter: the picture its MASK is painted over. */
export function imageParamOf(template: TemplateInfo): ParamInfo | undefined {
  return template.params.find((p) => p.type === "IMAGE");
}

/** A random seed within the parameter's own bounds; below 2^32 (short enough to read aloud) where they allow. */
export function randomSeed(param: Pick<ParamInfo, "min" | "max">, random: () => number = Math.random): string {
  const low = Math.max(0, Math.ceil(param.min ?? 0));
  const high = Math.floor(Math.min(param.max ?? Number.MAX_SAFE_INTEGER, Math.max(low, 2 ** 32 - 1)));
  return String(low + Math.floor(random() * (high - low + 1)));
}

function defaultValue(param: ParamInfo): string | LoraValue[] {
  if (param.type === "LORAS") {
    const raw = Array.isArray(param.default) ? param.default : [];
    return raw.map((l: { name?: unknown; strength?: unknown }) => ({
      name: String(l.name ?? ""),
      strength: String(l.strength ?? 1),
    }));
  }
  if (param.type === "BOOLEAN") return param.default === true ? "true" : "false";
  if (param.default === null || param.default === undefined) return "";
  return String(param.default);
}

export function defaultValues(template: TemplateInfo): FormValues {
  return Object.fromEntries(template.params.map((p) => [p.name, defaultValue(p)]));
}

/** Saved values over defaults, keeping only parameters the template still has, of the right shape. */
export function mergeValues(template: TemplateInfo, saved: unknown): FormValues {
  const values = defaultValues(template);
  if (!saved || typeof saved !== "object") return values;
  const source = saved as Record<string, unknown>;
  for (const param of template.params) {
    const value = source[param.name];
    if (param.type === "LORAS") {
      if (Array.isArray(value)) {
        values[param.name] = value
          .filter((l): l is { name: unknown; strength: unknown } => typeof l === "object" && l !== null)
          .map((l) => ({ name: String(l.name ?? ""), strength: String(l.strength ?? "1") }));
      }
    } else if (param.type === "BOOLEAN") {
      if (value === true || value === "true") values[param.name] = "true";
      else if (value === false || value === "false") values[param.name] = "false";
    } else if (typeof value === "string" || typeof value === "number") {
      values[param.name] = String(value);
    }
  }
  return values;
}

const camel = (name: string) => name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/** A generation's stored parameters (snake_case, seed included) as form values, for "use again". */
export function valuesFromParameters(template: TemplateInfo, parameters: unknown): FormValues {
  if (!parameters || typeof parameters !== "object") return defaultValues(template);
  const renamed = Object.fromEntries(Object.entries(parameters).map(([k, v]) => [camel(k), v]));
  return mergeValues(template, renamed);
}

function numberOrText(param: ParamInfo, raw: string): number | string | boolean {
  if (param.type === "INT" || param.type === "FLOAT" || param.type === "SEED") return Number(raw);
  if (param.type === "BOOLEAN") return raw === "true";
  return raw;
}

/** The mutation input: empty optional fields are left out so the template's defaults apply. */
export function toInput(template: TemplateInfo, values: FormValues): GenerationInput {
  const input: Record<string, unknown> = { template: template.name };
  const extra: Record<string, unknown> = {};
  for (const param of template.params) {
    const value = values[param.name];
    let converted: unknown;
    if (param.type === "LORAS") {
      const rows = Array.isArray(value) ? value : [];
      converted = rows.map((l) => ({ name: l.name, strength: Number(l.strength) }));
    } else {
      const text = typeof value === "string" ? value : "";
      if (text.trim() === "" && !(param.type === "STRING" && param.required)) continue;
      converted = numberOrText(param, param.type === "STRING" ? text : text.trim());
    }
    if (inputFields.has(param.name)) input[param.name] = converted;
    else extra[param.name] = converted;
  }
  if (Object.keys(extra).length > 0) input.extra = extra;
  return input as GenerationInput;
}

const storageKey = (template: string) => `safelight.form.${template}`;

/** The template the Generate form opens with. */
export const TEMPLATE_KEY = "safelight.template";

/** Open the Generate form (when it next mounts) on `template` with `values`: "use again", "use as input", a dropped PNG. */
export function presetForm(template: string, values: FormValues, storage: Storage = localStorage): void {
  saveValues(template, values, storage);
  try {
    storage.setItem(TEMPLATE_KEY, template);
  } catch {
    // storage disabled: the form opens on its default template
  }
}

export function loadValues(template: TemplateInfo, storage: Storage = localStorage): FormValues {
  try {
    const raw = storage.getItem(storageKey(template.name));
    return mergeValues(template, raw ? JSON.parse(raw) : null);
  } catch {
    return defaultValues(template);
  }
}

export function saveValues(template: string, values: FormValues, storage: Storage = localStorage): void {
  try {
    storage.setItem(storageKey(template), JSON.stringify(values));
  } catch {
    // storage full or disabled: inputs just won't survive a reload
  }
}
