import { useQuery } from "@apollo/client/react";
import { useEffect, useRef, useState, type ClipboardEvent, type DragEvent } from "react";
import { useInputs, type UploadedInput } from "../api/inputs";
import { InputQuery } from "../api/operations";
import { formatBytes } from "../components/format";
import "./ImageDrop.css";

type Upload =
  | { state: "idle" }
  | { state: "uploading"; name: string; fraction: number }
  | { state: "error"; code: string; message: string };

/** What a drag carries: files (not text or a link dragged from the page). */
const carriesFiles = (e: DragEvent) => Array.from(e.dataTransfer?.types ?? []).includes("Files");

/** The bytes behind an input id, as an object URL this component can show (null while loading). */
export function useInputUrl(id: string): { url: string | null; error: string | null } {
  const inputs = useInputs();
  const [loaded, setLoaded] = useState<{ id: string; url: string | null; error: string | null }>({ id: "", url: null, error: null });
  useEffect(() => {
    if (!id) return;
    let live = true;
    inputs.objectUrl(id).then(
      (url) => live && setLoaded({ id, url, error: null }),
      (err: unknown) => live && setLoaded({ id, url: null, error: err instanceof Error ? err.message : String(err) }),
    );
    return () => {
      live = false;
    };
  }, [id, inputs]);
  return loaded.id === id && id ? { url: loaded.url, error: loaded.error } : { url: null, error: null };
}

/** An uploaded input as a small picture (its bytes fetched with the token), for pages that show one. */
export function InputThumb({ id }: { id: string }) {
  const { url, error } = useInputUrl(id);
  if (error) return <span className="muted">{error}</span>;
  return url ? <img className="input-thumb" src={url} alt={`Input ${id}`} /> : <span className="muted">…</span>;
}

/**
 * An IMAGE parameter: drop a file on it, paste one (Ctrl+V while it has focus), or pick one. The file
 * goes to `POST /inputs` at once, with progress; the parameter's value is the input id the server
 * answers, and the server's typed error (not an image, too large, too many pixels) shows here as it is.
 */
export function ImageDrop({
  compact = false,
  catchPaste = false,
  inputId,
  name,
  value,
  invalid,
  describedBy,
  onChange,
  onBlur,
}: {
  compact?: boolean;
  /** Also take an image pasted anywhere on the page outside a text field (the form's main image). */
  catchPaste?: boolean;
  inputId: string;
  name: string;
  value: string;
  invalid: boolean;
  describedBy: string | undefined;
  onChange: (id: string) => void;
  onBlur: () => void;
}) {
  const inputs = useInputs();
  const [upload, setUpload] = useState<Upload>({ state: "idle" });
  const [dragging, setDragging] = useState(false);
  const [local, setLocal] = useState<UploadedInput | null>(null);
  const abort = useRef<AbortController | null>(null);
  const { url, error: previewError } = useInputUrl(value);
  const known = local && local.id === value ? local : null;
  const { data } = useQuery(InputQuery, { variables: { id: value }, skip: !value || known !== null });
  const meta = known ?? (value ? data?.input : null) ?? null;

  useEffect(() => () => abort.current?.abort(), []);


  const take = async (file: File | null | undefined) => {
    if (!file) return;
    abort.current?.abort();
    const controller = new AbortController();
    abort.current = controller;
    setUpload({ state: "uploading", name: file.name, fraction: 0 });
    const result = await inputs.upload(file, {
      filename: file.name || "pasted.png",
      signal: controller.signal,
      onProgress: (fraction) => setUpload({ state: "uploading", name: file.name, fraction }),
    });
    if (controller.signal.aborted && !result.ok) {
      setUpload({ state: "idle" });
      return;
    }
    if (result.ok) {
      inputs.remember(result.input.id, file);
      setLocal(result.input);
      setUpload({ state: "idle" });
      onChange(result.input.id);
    } else {
      setUpload({ state: "error", code: result.code, message: result.message });
    }
    onBlur();
  };

  const takeRef = useRef<(file: File) => void>(() => {});
  useEffect(() => {
    takeRef.current = (file) => void take(file);
  });
  useEffect(() => {
    if (!catchPaste) return;
    const onPagePaste = (e: globalThis.ClipboardEvent) => {
      const target = e.target as HTMLElement | null;
      if (e.defaultPrevented || (target && (["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName) || target.isContentEditable))) return;
      const file = Array.from(e.clipboardData?.files ?? []).find((f) => f.type.startsWith("image/"));
      if (!file) return;
      e.preventDefault();
      takeRef.current(file);
    };
    document.addEventListener("paste", onPagePaste);
    return () => document.removeEventListener("paste", onPagePaste);
  }, [catchPaste]);

  const onDrop = (e: DragEvent<HTMLDivElement>) => {
    if (!carriesFiles(e)) return;
    // Ours, not the page's "load a PNG's parameters" drop.
    e.preventDefault();
    e.stopPropagation();
    setDragging(false);
    void take(e.dataTransfer.files[0]);
  };
  const onDragOver = (e: DragEvent<HTMLDivElement>) => {
    if (!carriesFiles(e)) return;
    e.preventDefault();
    e.stopPropagation();
    e.dataTransfer.dropEffect = "copy";
    if (!dragging) setDragging(true);
  };
  const onPaste = (e: ClipboardEvent<HTMLDivElement>) => {
    const file = Array.from(e.clipboardData?.files ?? []).find((f) => f.type.startsWith("image/"));
    if (!file) return;
    e.preventDefault();
    void take(file);
  };

  const uploading = upload.state === "uploading";
  const percent = uploading ? Math.round(upload.fraction * 100) : 0;
  return (
    <div
      className={`drop-zone${dragging ? " drop-zone-active" : ""}${value ? " drop-zone-filled" : ""}${compact ? " drop-zone-compact" : ""}`}
      tabIndex={0}
      role="group"
      aria-label={`${name}: drop, paste or choose an image`}
      aria-describedby={describedBy}
      aria-invalid={invalid}
      aria-busy={uploading}
      data-testid={`drop-${name}`}
      onDragEnter={onDragOver}
      onDragOver={onDragOver}
      onDragLeave={(e) => {
        if (!e.currentTarget.contains(e.relatedTarget as Node | null)) setDragging(false);
      }}
      onDrop={onDrop}
      onPaste={onPaste}
    >
      {value && url ? (
        <img className="drop-preview" src={url} alt={`The chosen ${name}`} data-testid={`preview-${name}`} />
      ) : (
        <div className="drop-empty">
          <span className="drop-icon" aria-hidden="true" />
          <span>{dragging ? "Drop it here" : "Drop an image here, paste one, or choose a file"}</span>
        </div>
      )}
      <div className="drop-bar">
        <span className="drop-meta">
          {meta ? (
            <>
              <span className="drop-name">{meta.filename || "image"}</span> · {meta.width}×{meta.height} · {formatBytes(meta.sizeBytes)}
            </>
          ) : value && previewError ? (
            <span className="field-error">{previewError}</span>
          ) : null}
        </span>
        <span className="drop-actions">
          <label className="button button-small" htmlFor={inputId}>
            {value ? "Replace…" : "Choose file…"}
          </label>
          <input
            id={inputId}
            className="sr-only"
            type="file"
            accept="image/png,image/jpeg,image/webp,image/gif,image/bmp"
            onChange={(e) => {
              void take(e.target.files?.[0]);
              e.target.value = ""; // the same file again is a new choice
            }}
          />
          {value && !uploading && (
            <button type="button" className="button button-ghost button-small" onClick={() => onChange("")}>
              Remove
            </button>
          )}
          {uploading && (
            <button type="button" className="button button-ghost button-small" onClick={() => abort.current?.abort()}>
              Cancel
            </button>
          )}
        </span>
      </div>
      {uploading && (
        <div className="drop-progress" role="progressbar" aria-label="Uploading" aria-valuemin={0} aria-valuemax={100} aria-valuenow={percent}>
          <span style={{ width: `${percent}%` }} />
          <p className="drop-status" aria-live="polite">
            Uploading {upload.name || "the image"}… {percent} %
          </p>
        </div>
      )}
      {upload.state === "error" && (
        <p className="field-error drop-error" role="alert" data-testid={`upload-error-${name}`}>
          {upload.message} <span className="muted">({upload.code})</span>
        </p>
      )}
    </div>
  );
}
