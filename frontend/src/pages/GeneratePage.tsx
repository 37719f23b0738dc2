import { useQuery } from "@apollo/client/react";
import { useEffect, useRef, useState } from "react";
import { useLocation } from "react-router";
import { FormDataQuery, ViewerQuery } from "../api/operations";
import { GenerateForm } from "../form/GenerateForm";
import { SaveWorkflowTemplate } from "../form/SaveWorkflowTemplate";
import { loadValues, presetForm, TEMPLATE_KEY } from "../form/values";
import { importWorkflow, readDroppedFile } from "../form/workflowImport";
import { ActiveList } from "../generation/ActiveList";
import { CURRENT_KEY, type GenerateState } from "../generation/current";
import { LivePanel } from "../generation/LivePanel";
import { paramLabel } from "../form/ParamField";
import "./GeneratePage.css";

export { CURRENT_KEY };

type Notice =
  | { kind: "loaded"; filename: string; template: string; filled: string[]; needsInput: string[]; workflow: unknown }
  | { kind: "workflow-only"; filename: string; workflow: unknown; source: "png" | "json" }
  | { kind: "error"; filename: string; message: string }
  | { kind: "saved"; name: string };

const carriesFiles = (e: DragEvent) => Array.from(e.dataTransfer?.types ?? []).includes("Files");

export function GeneratePage() {
  const { data, loading, error } = useQuery(FormDataQuery);
  const viewer = useQuery(ViewerQuery).data?.viewer;
  const location = useLocation();
  const [current, setCurrent] = useState<string | null>(() => localStorage.getItem(CURRENT_KEY));
  const [submitted, setSubmitted] = useState(false);
  const [imports, setImports] = useState(0);
  const [notice, setNotice] = useState<Notice | null>(null);
  const [saving, setSaving] = useState(false);
  const [dragging, setDragging] = useState(false);
  const dragTimer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);

  const select = (id: string | null) => {
    setSubmitted(id !== null);
    if (id) localStorage.setItem(CURRENT_KEY, id);
    else localStorage.removeItem(CURRENT_KEY);
    setCurrent(id);
  };

  // "Vary seed" elsewhere navigates here asking to show the generation it made.
  const [seenKey, setSeenKey] = useState(location.key);
  if (seenKey !== location.key) {
    setSeenKey(location.key);
    const wanted = (location.state as GenerateState | null)?.current;
    if (wanted && wanted !== current) {
      setCurrent(wanted);
      setSubmitted(true);
    }
  }

  const templates = data?.templates;
  const load = async (file: File) => {
    setSaving(false);
    try {
      const dropped = await readDroppedFile(file);
      if (!dropped) {
        setNotice({ kind: "error", filename: file.name, message: "has no ComfyUI workflow in it." });
        return;
      }
      // A workflow file is brought to become a template: an admin sees the review at once.
      if (dropped.source === "json" && viewer?.isAdmin) setSaving(true);
      if (!dropped.prompt || !templates?.length) {
        setNotice({ kind: "workflow-only", filename: file.name, workflow: dropped.workflow, source: dropped.source });
        return;
      }
      const result = importWorkflow(dropped.prompt, templates, localStorage.getItem(TEMPLATE_KEY) ?? "", loadValues);
      if (!result) return;
      presetForm(result.template.name, result.values);
      setImports((n) => n + 1);
      setNotice({
        kind: "loaded",
        filename: file.name,
        template: result.template.title,
        filled: result.filled,
        needsInput: result.needsInput,
        workflow: dropped.workflow,
      });
    } catch (err) {
      setNotice({ kind: "error", filename: file.name, message: err instanceof Error ? `is not readable: ${err.message}.` : "is not readable." });
    }
  };
  const loadRef = useRef(load);
  useEffect(() => {
    loadRef.current = load;
  });

  // A file dropped anywhere on the page (not on an image field, which takes it as an input) loads
  // the workflow embedded in it; without this the browser would navigate away to show the file.
  useEffect(() => {
    const over = (e: DragEvent) => {
      if (!carriesFiles(e)) return;
      e.preventDefault();
      if (e.dataTransfer) e.dataTransfer.dropEffect = "copy";
      setDragging(true);
      clearTimeout(dragTimer.current);
      dragTimer.current = setTimeout(() => setDragging(false), 200);
    };
    const drop = (e: DragEvent) => {
      if (!carriesFiles(e)) return;
      e.preventDefault();
      setDragging(false);
      const file = e.dataTransfer?.files[0];
      if (file) void loadRef.current(file);
    };
    document.addEventListener("dragover", over);
    document.addEventListener("drop", drop);
    return () => {
      document.removeEventListener("dragover", over);
      document.removeEventListener("drop", drop);
      clearTimeout(dragTimer.current);
    };
  }, []);

  const workflow = notice && (notice.kind === "loaded" || notice.kind === "workflow-only") ? notice.workflow : null;
  return (
    <div className="generate-layout">
      <div>
        <div className="import-bar">
          <label className="link-button" htmlFor="open-workflow">
            Open a PNG or workflow…
          </label>
          <input
            id="open-workflow"
            className="sr-only"
            type="file"
            accept="image/png,application/json,.json"
            onChange={(e) => {
              const file = e.target.files?.[0];
              e.target.value = "";
              if (file) void load(file);
            }}
          />
        </div>
        {notice && (
          <section
            className={`panel import-notice${notice.kind === "error" ? " import-error" : ""}`}
            role={notice.kind === "error" ? "alert" : "status"}
            data-testid="import-notice"
          >
            <div className="import-text">
              {notice.kind === "loaded" && (
                <>
                  <p>
                    Loaded {notice.filled.length} parameter{notice.filled.length === 1 ? "" : "s"} from <strong>{notice.filename}</strong>{" "}
                    into <strong>{notice.template}</strong>
                    {notice.filled.length > 0 && <span className="muted">: {notice.filled.map(paramLabel).join(", ")}</span>}.
                  </p>
                  {notice.needsInput.length > 0 && (
                    <p className="muted">
                      Choose {notice.needsInput.map((n) => paramLabel(n).toLowerCase()).join(" and ")} here: the PNG names files on the machine
                      that made it, not uploads.
                    </p>
                  )}
                </>
              )}
              {notice.kind === "workflow-only" && (
                <p>
                  <strong>{notice.filename}</strong> holds the editor's workflow only: there are no parameters to fill in
                  {viewer?.isAdmin ? "; save it as a template to get its form." : ". An administrator can make it a template."}
                </p>
              )}
              {notice.kind === "error" && (
                <p>
                  <strong>{notice.filename}</strong> {notice.message} Drop a PNG saved by ComfyUI or Safelight, or a workflow JSON file.
                </p>
              )}
              {notice.kind === "saved" && (
                <p>
                  Saved the template <strong>{notice.name}</strong>; the form below now uses it.
                </p>
              )}
            </div>
            <div className="actions import-actions">
              {viewer?.isAdmin && workflow != null && !saving && (
                <button type="button" className="button button-small" onClick={() => setSaving(true)}>
                  Save its workflow as a new template
                </button>
              )}
              <button type="button" className="button button-ghost button-small" onClick={() => setNotice(null)}>
                Dismiss
              </button>
            </div>
            {saving && workflow != null && notice.kind !== "error" && notice.kind !== "saved" && (
              <SaveWorkflowTemplate
                workflow={workflow}
                filename={notice.filename}
                onClose={() => setSaving(false)}
                onSaved={(name) => {
                  localStorage.setItem(TEMPLATE_KEY, name);
                  setSaving(false);
                  setNotice({ kind: "saved", name });
                  setImports((n) => n + 1);
                }}
              />
            )}
          </section>
        )}
        {loading && !data && <div className="panel skeleton" aria-busy="true" aria-label="Loading the form" />}
        {error && (
          <div className="alert alert-error" role="alert">
            Could not load the templates: {error.message}
          </div>
        )}
        {data && (
          <GenerateForm
            key={`${location.key}:${imports}`}
            templates={data.templates}
            catalog={data.catalog}
            onCreated={select}
          />
        )}
      </div>
      <div className="live-column">
        <ActiveList current={current} onSelect={select} />
        {current ? (
          <LivePanel key={current} id={current} focus={submitted} onDismiss={() => select(null)} />
        ) : (
          <section className="panel live-panel live-empty" data-testid="live-empty">
            <h2>Nothing developing yet</h2>
            <p className="muted">
              Describe an image and press Generate. Progress, previews and results appear here as they arrive. Drop a PNG made by
              ComfyUI or Safelight (or a workflow JSON file) anywhere here to load its parameters.
            </p>
          </section>
        )}
      </div>
      {dragging && (
        <div className="page-drop" aria-hidden="true">
          <p>Drop a PNG made by ComfyUI or Safelight, or a workflow JSON file, to load its parameters</p>
        </div>
      )}
    </div>
  );
}
