import { useMutation } from "@apollo/client/react";
import { useMemo, useRef, useState, type FormEvent } from "react";
import { CreateGenerationMutation } from "../api/operations";
import { fieldId, ParamField } from "./ParamField";
import { validate, type FieldErrors } from "./validation";
import {
  imageParamOf,
  loadValues,
  saveValues,
  TEMPLATE_KEY,
  toInput,
  type CatalogInfo,
  type FormValues,
  type TemplateInfo,
} from "./values";
import "./GenerateForm.css";

/** GenerationInput's own default template (txt2img in the schema), else the first that needs no upload. */
const API_DEFAULT_TEMPLATE = "txt2img";

function defaultTemplate(templates: TemplateInfo[]): string {
  const preferred =
    templates.find((t) => t.name === API_DEFAULT_TEMPLATE) ??
    templates.find((t) => !t.params.some((p) => (p.type === "IMAGE" || p.type === "MASK") && p.required)) ??
    templates[0];
  return preferred?.name ?? "";
}

const RANK: Record<string, number> = { IMAGE: 0, MASK: 1, STRING: 2 };

/** The image and its mask first, then strings (the prompts); the rest in the template's own order. */
function ordered(template: TemplateInfo) {
  return [...template.params].sort((a, b) => (RANK[a.type] ?? 3) - (RANK[b.type] ?? 3));
}

const dropField = (errors: FieldErrors, name: string): FieldErrors =>
  Object.fromEntries(Object.entries(errors).filter(([k]) => k !== name && !k.startsWith(`${name}[`)));

export function GenerateForm({
  templates,
  catalog,
  onCreated,
}: {
  templates: TemplateInfo[];
  catalog: CatalogInfo | null;
  onCreated: (id: string) => void;
}) {
  const [templateName, setTemplateName] = useState(() => {
    const saved = localStorage.getItem(TEMPLATE_KEY);
    return templates.some((t) => t.name === saved) ? (saved as string) : defaultTemplate(templates);
  });
  const template = templates.find((t) => t.name === templateName) ?? templates[0];
  const [values, setValues] = useState<FormValues>(() => (template ? loadValues(template) : {}));
  // A field's own error shows once it was changed and left (or after a submit attempt), so tabbing
  // through untouched fields doesn't flash errors and shift the layout under the pointer.
  const [touched, setTouched] = useState<Set<string>>(new Set());
  const [changed, setChanged] = useState<Set<string>>(new Set());
  const [attempted, setAttempted] = useState(false);
  const [serverErrors, setServerErrors] = useState<FieldErrors>({});
  const [formMessage, setFormMessage] = useState<string | null>(null);
  const [create, { loading }] = useMutation(CreateGenerationMutation);
  const formRef = useRef<HTMLFormElement>(null);

  const clientErrors = useMemo(
    () => (template ? validate(template, values, catalog) : {}),
    [template, values, catalog],
  );
  const shown: FieldErrors = { ...serverErrors };
  for (const [field, message] of Object.entries(clientErrors)) {
    const top = field.split("[")[0] ?? field;
    if (attempted || (touched.has(top) && changed.has(top))) shown[field] = message;
  }

  if (!template) return <p className="muted">No workflow templates are configured.</p>;

  const image = imageParamOf(template);
  const imageId = image ? String(values[image.name] ?? "") : "";
  const change = (name: string, value: FormValues[string]) => {
    const next = { ...values, [name]: value };
    // A mask belongs to the picture it was painted over.
    if (image && name === image.name && value !== values[name]) {
      for (const p of template.params) if (p.type === "MASK") next[p.name] = "";
    }
    setValues(next);
    saveValues(template.name, next);
    setServerErrors((errors) => dropField(errors, name));
    setChanged((c) => (c.has(name) ? c : new Set(c).add(name)));
  };

  const focusFirst = (errors: FieldErrors) => {
    const first = Object.keys(errors)[0];
    if (!first) return;
    requestAnimationFrame(() => {
      const el = formRef.current?.querySelector<HTMLElement>(`#${fieldId(first)}`) ??
        formRef.current?.querySelector<HTMLElement>(`#${fieldId(first.split("[")[0] ?? first)}`);
      el?.focus();
    });
  };

  const submit = async (event?: FormEvent) => {
    event?.preventDefault();
    setAttempted(true);
    setFormMessage(null);
    if (Object.keys(clientErrors).length > 0) {
      focusFirst(clientErrors);
      return;
    }
    try {
      const { data } = await create({
        variables: { input: toInput(template, values), key: crypto.randomUUID() },
      });
      const result = data?.createGeneration;
      if (!result) return;
      switch (result.__typename) {
        case "GenerationPayload":
          setServerErrors({});
          setAttempted(false);
          onCreated(result.generation.id);
          break;
        case "ValidationError": {
          const errors: FieldErrors = {};
          const known = new Set(template.params.map((p) => p.name));
          const unplaced: string[] = [];
          for (const e of result.errors) {
            const top = e.field.split(/[[.]/)[0] ?? e.field;
            if (known.has(top)) errors[e.field] = e.message;
            else unplaced.push(`${e.field}: ${e.message}`);
          }
          setServerErrors(errors);
          setFormMessage([result.message, ...unplaced].join(" — "));
          focusFirst(errors);
          break;
        }
        case "QuotaExceededError":
          setFormMessage(`${result.message} (limit ${result.limit})`);
          break;
        default:
          setFormMessage(result.message ?? "The generation was not created.");
      }
    } catch (err) {
      setFormMessage(err instanceof Error ? err.message : String(err));
    }
  };

  const invalidCount = Object.keys(shown).length;
  return (
    <form ref={formRef} className="panel generate-form" noValidate onSubmit={submit} aria-labelledby="form-title">
      <header className="panel-header">
        <h2 id="form-title">{template.title}</h2>
        {templates.length > 1 && (
          <div className="template-picker">
            <label htmlFor="template">Template</label>
            <select
              id="template"
              value={template.name}
              onChange={(e) => {
                const next = templates.find((t) => t.name === e.target.value);
                if (!next) return;
                localStorage.setItem(TEMPLATE_KEY, next.name);
                setTemplateName(next.name);
                setValues(loadValues(next));
                setServerErrors({});
                setAttempted(false);
                // Another template's fields: what was touched in the last one says nothing here.
                setTouched(new Set());
                setChanged(new Set());
              }}
            >
              {templates.map((t) => (
                <option key={t.name} value={t.name}>
                  {t.title}
                  {t.source === "UPLOADED" ? ` (v${t.version})` : ""}
                </option>
              ))}
            </select>
          </div>
        )}
      </header>
      <p className="muted form-description">{template.description}</p>
      {catalog && !catalog.available && (
        <div className="alert alert-warning" role="status">
          No ComfyUI backend is answering, so models can't be listed. You can still queue work.
        </div>
      )}
      <div className="fields">
        {ordered(template).map((param) => (
          <ParamField
            key={param.name}
            param={param}
            value={values[param.name] ?? ""}
            catalog={catalog}
            errors={shown}
            onChange={(v) => change(param.name, v)}
            onBlur={() => setTouched((t) => (t.has(param.name) ? t : new Set(t).add(param.name)))}
            onSubmitShortcut={() => void submit()}
            imageId={param.type === "MASK" ? imageId : undefined}
            compact={param === image && template.params.some((p) => p.type === "MASK")}
            mainImage={param === image}
          />
        ))}
      </div>
      {formMessage && (
        <div className="alert alert-error" role="alert" data-testid="form-error">
          {formMessage}
        </div>
      )}
      <div className="form-footer">
        <button type="submit" className="button button-primary" disabled={loading}>
          {loading ? "Queuing…" : "Generate"}
        </button>
        <span className="muted form-status" aria-live="polite">
          {attempted && invalidCount > 0 ? `${invalidCount} field${invalidCount > 1 ? "s need" : " needs"} attention` : "Ctrl+Enter in the prompt also generates"}
        </span>
      </div>
    </form>
  );
}
