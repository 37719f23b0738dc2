import type { CatalogInfo, FormValues, LoraValue, ParamInfo, TemplateInfo } from "./values";

/**
 * Client-side checks derived only from the template's parameter descriptions (the `templates`
 * query: required, min/max, multipleOf, maxLength, maxItems, choices), keyed by the API's field
 * names (`loras[1].strength`) so server errors land in the same places. Nothing here adds a limit
 * of its own: a bound the description leaves out is left to the API, whose answer shows at the
 * same field. For a LORAS parameter, min/max bound each LoRA's strength.
 */
export type FieldErrors = Record<string, string>;

const CATALOG_LIST = {
  CHECKPOINTS: "checkpoints",
  LORAS: "loras",
  SAMPLERS: "samplers",
  SCHEDULERS: "schedulers",
} as const;

export function choicesFor(param: ParamInfo, catalog: CatalogInfo | null | undefined): string[] | null {
  if (param.choices) return param.choices;
  if (param.catalog && catalog?.available) return catalog[CATALOG_LIST[param.catalog]];
  return null;
}

function rangeMessage(min: number | null, max: number | null): string {
  if (min !== null && max !== null) return `must be between ${min} and ${max}`;
  if (min !== null) return `must be at least ${min}`;
  return `must be at most ${max}`;
}

const outside = (n: number, min: number | null, max: number | null) =>
  (min !== null && n < min) || (max !== null && n > max);

function checkNumber(param: ParamInfo, raw: string): string | null {
  const text = raw.trim();
  if (text === "") return param.required ? "is required" : null;
  const n = Number(text);
  if (!Number.isFinite(n)) return "must be a number";
  if (param.type === "INT" || param.type === "SEED") {
    if (!Number.isInteger(n)) return "must be a whole number";
    // Not a limit of the template: a larger number cannot be sent exactly from a browser (JSON number → double).
    if (!Number.isSafeInteger(n)) return "is too large to send exactly";
  }
  const { min, max } = param;
  if (outside(n, min, max)) return rangeMessage(min, max);
  if (param.multipleOf && n % param.multipleOf !== 0) return `must be a multiple of ${param.multipleOf}`;
  return null;
}

function checkLoras(param: ParamInfo, rows: LoraValue[], catalog: CatalogInfo | null | undefined, errors: FieldErrors) {
  if (param.maxItems !== null && rows.length > param.maxItems) errors[param.name] = `at most ${param.maxItems} LoRAs`;
  const names = choicesFor(param, catalog);
  const { min: low, max: high } = param;
  rows.forEach((row, i) => {
    const where = `${param.name}[${i}]`;
    if (!row.name) errors[`${where}.name`] = "choose a LoRA";
    else if (names && !names.includes(row.name)) errors[`${where}.name`] = `${row.name} is not offered by the backends`;
    const strength = Number(row.strength);
    if (row.strength.trim() === "" || !Number.isFinite(strength)) errors[`${where}.strength`] = "must be a number";
    else if (outside(strength, low, high)) errors[`${where}.strength`] = rangeMessage(low, high);
  });
}

export function validate(
  template: TemplateInfo,
  values: FormValues,
  catalog?: CatalogInfo | null,
): FieldErrors {
  const errors: FieldErrors = {};
  for (const param of template.params) {
    const value = values[param.name];
    if (param.type === "LORAS") {
      checkLoras(param, Array.isArray(value) ? value : [], catalog, errors);
      continue;
    }
    const text = typeof value === "string" ? value : "";
    let message: string | null = null;
    if (param.type === "STRING") {
      if (param.required && text.trim() === "") message = "is required";
      else if (param.maxLength !== null && text.length > param.maxLength)
        message = `must be at most ${param.maxLength} characters`;
    } else if (param.type === "IMAGE" || param.type === "MASK") {
      if (param.required && text === "") message = param.type === "IMAGE" ? "choose an image" : "paint a mask";
    } else if (param.type === "BOOLEAN") {
      message = null;
    } else if (param.type === "ENUM") {
      const choices = choicesFor(param, catalog);
      if (text === "") message = param.required ? "is required" : null;
      else if (choices && !choices.includes(text)) message = `${text} is not one of the offered choices`;
    } else {
      message = checkNumber(param, text);
    }
    if (message) errors[param.name] = message;
  }
  return errors;
}

/** Human label for an API field name: `negativePrompt` → "Negative prompt". */
export function labelFor(name: string): string {
  const words = name.replace(/([A-Z])/g, " $1").toLowerCase();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

export function errorsFor(prefix: string, errors: FieldErrors): [string, string][] {
  return Object.entries(errors).filter(([field]) => field === prefix || field.startsWith(`${prefix}[`));
}

export type { TemplateInfo };
