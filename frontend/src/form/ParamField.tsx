import { labelFor, type FieldErrors } from "./validation";
import { randomSeed, type CatalogInfo, type LoraValue, type ParamInfo } from "./values";
import { choicesFor } from "./validation";
import { ImageDrop } from "./ImageDrop";
import { MaskPainter } from "./MaskPainter";
import "./ParamField.css";

const LABELS: Record<string, string> = { cfg: "CFG scale", loras: "LoRAs", batchSize: "Batch size" };
/** `LoraInput.strength`'s default in schema.graphql (the template's description has no per-LoRA default). */
const LORA_STRENGTH_DEFAULT = 1;

export const paramLabel = (name: string) => LABELS[name] ?? labelFor(name);

interface FieldProps {
  param: ParamInfo;
  value: string | LoraValue[];
  catalog: CatalogInfo | null;
  errors: FieldErrors;
  onChange: (value: string | LoraValue[]) => void;
  onBlur: () => void;
  onSubmitShortcut: () => void;
  /** For a MASK: the input id of the image it is painted over ("" while none is chosen). */
  imageId?: string;
  /** For an IMAGE the mask painter shows again below: a small preview is enough. */
  compact?: boolean;
  /** The template's first IMAGE: it takes an image pasted anywhere on the page. */
  mainImage?: boolean;
}

const WIDE_TYPES = new Set(["STRING", "IMAGE", "MASK"]);

export const fieldId = (name: string) => `field-${name.replace(/[^a-zA-Z0-9]/g, "-")}`;
const errorId = (name: string) => `${fieldId(name)}-error`;
const hintId = (name: string) => `${fieldId(name)}-hint`;

function ErrorText({ name, errors }: { name: string; errors: FieldErrors }) {
  const message = errors[name];
  if (!message) return null;
  return (
    <p className="field-error" id={errorId(name)} data-field={name}>
      {message}
    </p>
  );
}

function describedBy(name: string, errors: FieldErrors, hint: boolean): string | undefined {
  const ids = [hint ? hintId(name) : null, errors[name] ? errorId(name) : null].filter(Boolean);
  return ids.length ? ids.join(" ") : undefined;
}

function NumberInput({ param, value, errors, onChange, onBlur }: FieldProps & { value: string }) {
  const step = param.type === "FLOAT" ? "any" : String(param.multipleOf ?? 1);
  return (
    <input
      id={fieldId(param.name)}
      name={param.name}
      type="number"
      inputMode={param.type === "FLOAT" ? "decimal" : "numeric"}
      min={param.min ?? undefined}
      max={param.max ?? undefined}
      step={step}
      value={value}
      placeholder={param.default != null ? String(param.default) : undefined}
      aria-invalid={Boolean(errors[param.name])}
      aria-describedby={describedBy(param.name, errors, true)}
      onChange={(e) => onChange(e.target.value)}
      onBlur={onBlur}
    />
  );
}

function hintFor(param: ParamInfo): string {
  const parts: string[] = [];
  if (param.type === "INT" || param.type === "FLOAT") {
    if (param.min !== null && param.max !== null) parts.push(`${param.min}–${param.max}`);
    if (param.multipleOf && param.multipleOf > 1) parts.push(`multiple of ${param.multipleOf}`);
  }
  return parts.join(", ");
}

export function ParamField(props: FieldProps) {
  const { param, value, catalog, errors, onChange, onBlur, onSubmitShortcut } = props;
  const label = paramLabel(param.name);
  if (param.type === "LORAS") {
    return <LoraEditor {...props} value={Array.isArray(value) ? value : []} />;
  }
  const text = typeof value === "string" ? value : "";
  const id = fieldId(param.name);
  let control;
  if (param.type === "IMAGE") {
    control = (
      <ImageDrop
        compact={props.compact}
        catchPaste={props.mainImage}
        inputId={id}
        name={param.name}
        value={text}
        invalid={Boolean(errors[param.name])}
        describedBy={describedBy(param.name, errors, true)}
        onChange={onChange}
        onBlur={onBlur}
      />
    );
  } else if (param.type === "MASK") {
    control = (
      <MaskPainter
        key={props.imageId ?? ""}
        inputId={id}
        name={param.name}
        value={text}
        imageId={props.imageId ?? ""}
        invalid={Boolean(errors[param.name])}
        describedBy={describedBy(param.name, errors, true)}
        onChange={(v) => {
          onChange(v);
          onBlur();
        }}
      />
    );
  } else if (param.type === "BOOLEAN") {
    control = (
      <span className="toggle">
        <input
          id={id}
          name={param.name}
          type="checkbox"
          role="switch"
          checked={text === "true"}
          aria-describedby={describedBy(param.name, errors, true)}
          onChange={(e) => onChange(e.target.checked ? "true" : "false")}
          onBlur={onBlur}
        />
        <span className="toggle-track" aria-hidden="true" />
        <span className="toggle-state" aria-hidden="true">
          {text === "true" ? "On" : "Off"}
        </span>
      </span>
    );
  } else if (param.type === "STRING") {
    const long = param.multiline || (param.maxLength ?? 0) > 200;
    const common = {
      id,
      name: param.name,
      value: text,
      maxLength: param.maxLength ?? undefined,
      required: param.required,
      "aria-invalid": Boolean(errors[param.name]),
      "aria-describedby": describedBy(param.name, errors, true),
      onBlur,
    };
    control = long ? (
      <textarea
        {...common}
        rows={param.required ? 4 : 2}
        onChange={(e) => onChange(e.target.value)}
        onKeyDown={(e) => {
          if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
            e.preventDefault();
            onSubmitShortcut();
          }
        }}
      />
    ) : (
      <input {...common} type="text" onChange={(e) => onChange(e.target.value)} />
    );
  } else if (param.type === "ENUM") {
    const choices = choicesFor(param, catalog) ?? [];
    const options = text && !choices.includes(text) ? [text, ...choices] : choices;
    control = (
      <select
        id={id}
        name={param.name}
        value={text}
        aria-invalid={Boolean(errors[param.name])}
        aria-describedby={describedBy(param.name, errors, true)}
        onChange={(e) => onChange(e.target.value)}
        onBlur={onBlur}
      >
        {!param.required && <option value="">{param.default == null ? "Default (first offered)" : "Default"}</option>}
        {options.map((c) => (
          <option key={c} value={c}>
            {c}
          </option>
        ))}
      </select>
    );
  } else if (param.type === "SEED") {
    control = (
      <div className="input-row">
        <input
          id={id}
          name={param.name}
          type="text"
          inputMode="numeric"
          value={text}
          placeholder="Random each time"
          aria-invalid={Boolean(errors[param.name])}
          aria-describedby={describedBy(param.name, errors, true)}
          onChange={(e) => onChange(e.target.value.trim())}
          onBlur={onBlur}
        />
        <button type="button" className="button button-ghost" onClick={() => onChange(randomSeed(param))}>
          Random seed
        </button>
        {text !== "" && (
          <button type="button" className="button button-ghost" aria-label="Clear the seed" onClick={() => onChange("")}>
            Clear
          </button>
        )}
      </div>
    );
  } else {
    control = <NumberInput {...props} value={text} />;
  }
  const range = hintFor(param);
  const counter = param.type === "STRING" && param.maxLength ? `${text.length} / ${param.maxLength}` : null;
  return (
    <div className={`field field-${param.type.toLowerCase()}${WIDE_TYPES.has(param.type) || param.catalog === "CHECKPOINTS" ? " field-wide" : ""}`}>
      <div className="field-label-row">
        <label htmlFor={id} className={param.required ? "required" : undefined}>
          {label}
        </label>
        {counter && <span className="field-counter">{counter}</span>}
      </div>
      {control}
      <p className="field-hint" id={hintId(param.name)}>
        {param.description}
        {range && <span className="field-range"> ({range})</span>}
      </p>
      <ErrorText name={param.name} errors={errors} />
    </div>
  );
}

/** A new LoRA row's strength: LoraInput's default (1 in the schema), moved inside the parameter's bounds. */
function newStrength(param: ParamInfo): string {
  const bounded = Math.min(Math.max(LORA_STRENGTH_DEFAULT, param.min ?? -Infinity), param.max ?? Infinity);
  return String(bounded);
}

function LoraEditor({ param, value, catalog, errors, onChange, onBlur }: FieldProps & { value: LoraValue[] }) {
  const names = choicesFor(param, catalog) ?? [];
  const full = param.maxItems !== null && value.length >= param.maxItems;
  const update = (i: number, patch: Partial<LoraValue>) =>
    onChange(value.map((row, j) => (j === i ? { ...row, ...patch } : row)));
  return (
    <fieldset className="field field-wide lora-editor">
      <legend>{paramLabel(param.name)}</legend>
      {value.length === 0 && <p className="field-hint">None. {names.length === 0 && "The backends offer no LoRAs."}</p>}
      {value.map((row, i) => {
        const nameKey = `${param.name}[${i}].name`;
        const strengthKey = `${param.name}[${i}].strength`;
        return (
          <div className="lora-row" key={i}>
            <div className="lora-name">
              <label htmlFor={fieldId(nameKey)} className="sr-only">
                LoRA {i + 1}
              </label>
              <select
                id={fieldId(nameKey)}
                value={row.name}
                aria-invalid={Boolean(errors[nameKey])}
                aria-describedby={errors[nameKey] ? errorId(nameKey) : undefined}
                onChange={(e) => update(i, { name: e.target.value })}
                onBlur={onBlur}
              >
                <option value="">Choose a LoRA…</option>
                {(row.name && !names.includes(row.name) ? [row.name, ...names] : names).map((n) => (
                  <option key={n} value={n}>
                    {n}
                  </option>
                ))}
              </select>
              <ErrorText name={nameKey} errors={errors} />
            </div>
            <div className="lora-strength">
              <label htmlFor={fieldId(strengthKey)}>Strength</label>
              <input
                id={fieldId(strengthKey)}
                type="number"
                step="0.05"
                min={param.min ?? undefined}
                max={param.max ?? undefined}
                value={row.strength}
                aria-invalid={Boolean(errors[strengthKey])}
                aria-describedby={errors[strengthKey] ? errorId(strengthKey) : undefined}
                onChange={(e) => update(i, { strength: e.target.value })}
                onBlur={onBlur}
              />
              <ErrorText name={strengthKey} errors={errors} />
            </div>
            <button
              type="button"
              className="button button-ghost button-small"
              aria-label={`Remove LoRA ${i + 1}`}
              onClick={() => onChange(value.filter((_, j) => j !== i))}
            >
              Remove
            </button>
          </div>
        );
      })}
      <button
        type="button"
        className="button button-ghost button-small"
        disabled={full || names.length === 0}
        onClick={() => onChange([...value, { name: names[0] ?? "", strength: newStrength(param) }])}
      >
        Add LoRA
      </button>
      <p className="field-hint">{param.description}</p>
      <ErrorText name={param.name} errors={errors} />
    </fieldset>
  );
}
