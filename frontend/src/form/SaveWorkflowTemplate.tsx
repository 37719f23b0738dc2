import { useMutation } from "@apollo/client/react";
import { useEffect, useState, type FormEvent } from "react";
import { FormDataQuery, ProposeTemplateMutation, SaveTemplateMutation } from "../api/operations";
import "./SaveWorkflowTemplate.css";

type Proposal = {
  format: string;
  params: { name: string; type: string }[];
  raw: unknown;
  problems: { field: string; message: string }[];
};

/** A template name from a file name: lower case, [a-z0-9_-], at most 100 characters. */
export function suggestName(filename: string): string {
  const base = filename.replace(/\.[a-z0-9]+$/i, "").toLowerCase().replace(/[^a-z0-9_-]+/g, "-").replace(/^-+|-+$/g, "");
  return (base || "workflow").slice(0, 100);
}

const paramList = (raw: unknown): Proposal["params"] =>
  Array.isArray(raw)
    ? raw
        .filter((p): p is { name: unknown; type: unknown } => Boolean(p) && typeof p === "object")
        .map((p) => ({ name: String(p.name), type: String(p.type) }))
    : [];

/**
 * Admins: a dropped PNG's workflow (the editor's `workflow` chunk, else the API `prompt`) as a new
 * template. The API proposes its parameters (proposeTemplate) and saves it with them (saveTemplate);
 * its typed errors show here.
 */
export function SaveWorkflowTemplate({
  workflow,
  filename,
  onSaved,
  onClose,
}: {
  workflow: unknown;
  filename: string;
  onSaved: (name: string) => void;
  onClose: () => void;
}) {
  const [propose, proposing] = useMutation(ProposeTemplateMutation);
  const [save, saving] = useMutation(SaveTemplateMutation, { refetchQueries: [FormDataQuery], awaitRefetchQueries: true });
  const [proposal, setProposal] = useState<Proposal | null>(null);
  const [name, setName] = useState(() => suggestName(filename));
  const [title, setTitle] = useState("");
  const [problem, setProblem] = useState<string | null>(null);
  const [fieldErrors, setFieldErrors] = useState<{ field: string; message: string }[]>([]);
  const [paramsText, setParamsText] = useState("");

  useEffect(() => {
    let live = true;
    propose({ variables: { workflow } }).then(
      ({ data }) => {
        const result = data?.proposeTemplate;
        if (!live || !result) return;
        if (result.__typename === "TemplateProposal") {
          setProposal({ format: result.format, params: paramList(result.params), raw: result.params, problems: result.problems });
          setParamsText(JSON.stringify(result.params, null, 2));
        } else if (result.__typename === "ValidationError") {
          setProblem(result.message);
          setFieldErrors(result.errors);
        } else {
          setProblem(result.message);
        }
      },
      (err: unknown) => live && setProblem(err instanceof Error ? err.message : String(err)),
    );
    return () => {
      live = false;
    };
  }, [propose, workflow]);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setProblem(null);
    setFieldErrors([]);
    // The proposal as it is, unless the admin edited its declarations.
    let params: unknown = null;
    if (proposal && paramsText.trim() !== JSON.stringify(proposal.raw, null, 2)) {
      try {
        params = JSON.parse(paramsText);
      } catch (err) {
        setProblem(`The parameters are not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
        return;
      }
    }
    try {
      const { data } = await save({ variables: { input: { name, title: title || null, workflow, params } } });
      const result = data?.saveTemplate;
      if (!result) return;
      if (result.__typename === "TemplatePayload") onSaved(result.template.name);
      else if (result.__typename === "ValidationError") {
        setProblem(result.message);
        setFieldErrors(result.errors);
      } else setProblem(result.message);
    } catch (err) {
      setProblem(err instanceof Error ? err.message : String(err));
    }
  };

  return (
    <form className="save-template" onSubmit={submit} aria-label="Save the workflow as a template" data-testid="save-template">
      <h3>Save its workflow as a new template</h3>
      {proposing.loading && <p className="muted">Checking the workflow against the backends…</p>}
      {proposal && (
        <p className="muted save-template-proposal">
          {proposal.format === "UI" ? "Editor" : "API"} workflow · proposed parameters:{" "}
          {proposal.params.length ? proposal.params.map((p) => `${p.name} (${p.type})`).join(", ") : "none"}
        </p>
      )}
      {proposal && proposal.problems.length > 0 && (
        <ul className="save-template-problems">
          {proposal.problems.map((p) => (
            <li key={`${p.field}:${p.message}`}>
              <code>{p.field}</code> {p.message}
            </li>
          ))}
        </ul>
      )}
      {proposal && (
        <details className="save-template-params">
          <summary>Edit the parameter declarations (JSON, as in *.params.json)</summary>
          <textarea
            aria-label="Parameter declarations"
            value={paramsText}
            onChange={(e) => setParamsText(e.target.value)}
            rows={10}
            spellCheck={false}
          />
        </details>
      )}
      <div className="save-template-fields">
        <label>
          <span>Name</span>
          <input value={name} onChange={(e) => setName(e.target.value)} required maxLength={100} />
        </label>
        <label>
          <span>Title</span>
          <input value={title} onChange={(e) => setTitle(e.target.value)} placeholder="Shown in the template picker" maxLength={200} />
        </label>
      </div>
      {problem && (
        <div className="alert alert-error" role="alert">
          {problem}
          {fieldErrors.length > 0 && (
            <ul>
              {fieldErrors.map((f) => (
                <li key={`${f.field}:${f.message}`}>
                  <code>{f.field}</code> {f.message}
                </li>
              ))}
            </ul>
          )}
        </div>
      )}
      <div className="actions">
        <button type="submit" className="button button-primary" disabled={saving.loading || !name}>
          {saving.loading ? "Saving…" : "Save template"}
        </button>
        <button type="button" className="button button-ghost" onClick={onClose}>
          Not now
        </button>
      </div>
    </form>
  );
}
