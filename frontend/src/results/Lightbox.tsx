import { useEffect, useRef, useState, type ReactNode } from "react";
import { createPortal } from "react-dom";
import { formatBytes } from "../components/format";
import { describeOutput, isPicture, kindLabel, OutputView, type Output } from "./OutputView";
import { useResultActions, type Origin } from "./useResultActions";
import "./Lightbox.css";

const ZOOMS = [0.25, 0.5, 1, 2, 4];

/** The keys the lightbox answers, leaving typing in its own controls alone. */
export function lightboxKey(key: string): "prev" | "next" | "close" | "in" | "out" | "fit" | null {
  switch (key) {
    case "ArrowLeft":
      return "prev";
    case "ArrowRight":
      return "next";
    case "Escape":
      return "close";
    case "+":
    case "=":
      return "in";
    case "-":
      return "out";
    case "0":
      return "fit";
    default:
      return null;
  }
}

/** Keep Tab inside the dialog (aria-modal says the page behind is out of reach; so should the keyboard be). */
function trapFocus(e: KeyboardEvent, root: HTMLElement | null) {
  if (!root) return;
  const focusable = Array.from(
    root.querySelectorAll<HTMLElement>("button:not(:disabled), a[href], video[controls], audio[controls], [tabindex]:not([tabindex='-1'])"),
  );
  const first = focusable[0];
  const last = focusable[focusable.length - 1];
  if (!first || !last) return;
  const active = document.activeElement;
  if (e.shiftKey && (active === first || active === root || !root.contains(active))) {
    e.preventDefault();
    last.focus();
  } else if (!e.shiftKey && (active === last || !root.contains(active))) {
    e.preventDefault();
    first.focus();
  }
}

/**
 * Outputs at full size over the page: ←/→ between them, Esc closes, +/−/0 zoom (or click the
 * picture: fit ↔ 100 %, then scroll around). Each says its seed and batch index and offers its
 * download (a readable file name from the server), "use as input" and "vary seed".
 */
export function Lightbox({
  outputs,
  index,
  origin,
  onIndex,
  onClose,
  actions,
}: {
  outputs: Output[];
  index: number;
  origin: Origin | null;
  onIndex: (index: number) => void;
  onClose: () => void;
  /** The result actions; tests may leave them out. */
  actions?: boolean;
}) {
  const output = outputs[index];
  const [zoom, setZoom] = useState<number | "fit">("fit");
  const dialog = useRef<HTMLDivElement>(null);
  const count = outputs.length;

  const go = (to: number) => {
    if (to < 0 || to >= count || to === index) return;
    setZoom("fit");
    onIndex(to);
  };
  const stage = useRef<HTMLDivElement>(null);
  // From "fit", zoom steps from the scale the picture is shown at now (a large image fits below 100 %).
  const shownScale = () => {
    const img = stage.current?.querySelector("img");
    return img && img.naturalWidth ? img.clientWidth / img.naturalWidth : 1;
  };
  const zoomBy = (direction: 1 | -1) =>
    setZoom((z) => {
      const current = z === "fit" ? shownScale() : z;
      const next = direction > 0 ? ZOOMS.find((s) => s > current) : [...ZOOMS].reverse().find((s) => s < current);
      return next ?? current;
    });

  // Keys on the whole document while open, so they work wherever focus is in the dialog.
  const handler = useRef<(e: KeyboardEvent) => void>(() => {});
  useEffect(() => {
    handler.current = (e: KeyboardEvent) => {
      if (e.key === "Tab") {
        trapFocus(e, dialog.current);
        return;
      }
      const target = e.target as HTMLElement | null;
      if (target && ["INPUT", "SELECT", "TEXTAREA", "VIDEO", "AUDIO"].includes(target.tagName) && e.key !== "Escape") return;
      const action = lightboxKey(e.key);
      if (!action || e.ctrlKey || e.metaKey || e.altKey) return;
      e.preventDefault();
      if (action === "prev") go(index - 1);
      else if (action === "next") go(index + 1);
      else if (action === "close") onClose();
      else if (action === "in") zoomBy(1);
      else if (action === "out") zoomBy(-1);
      else setZoom("fit");
    };
  });
  useEffect(() => {
    const listener = (e: KeyboardEvent) => handler.current(e);
    document.addEventListener("keydown", listener);
    const opener = document.activeElement as HTMLElement | null;
    const overflow = document.body.style.overflow;
    document.body.style.overflow = "hidden";
    dialog.current?.focus();
    return () => {
      document.removeEventListener("keydown", listener);
      document.body.style.overflow = overflow;
      opener?.focus?.();
    };
  }, []);

  // A new zoom keeps the middle of the picture in the middle of the screen.
  useEffect(() => {
    const el = stage.current;
    if (!el || zoom === "fit") return;
    el.scrollLeft = (el.scrollWidth - el.clientWidth) / 2;
    el.scrollTop = (el.scrollHeight - el.clientHeight) / 2;
  }, [zoom]);

  if (!output) return null;
  const picture = output.kind === "IMAGE" || output.kind === "ANIMATION";
  const zoomed = picture && zoom !== "fit";
  return createPortal(
    <div
      className="lightbox"
      role="dialog"
      aria-modal="true"
      aria-label={`Result ${index + 1} of ${count}`}
      ref={dialog}
      tabIndex={-1}
      data-testid="lightbox"
    >
      <div className="lightbox-top">
        <span className="lightbox-count" data-testid="lightbox-count">
          {index + 1} / {count}
        </span>
        <span className="lightbox-meta" data-testid="lightbox-meta">
          {kindLabel(output)} · {describeOutput(output)} · {formatBytes(output.sizeBytes)}
        </span>
        {picture && (
          <span className="lightbox-zoom" role="group" aria-label="Zoom">
            <button type="button" className="button button-ghost button-small" onClick={() => zoomBy(-1)} aria-label="Zoom out">
              −
            </button>
            <button type="button" className="button button-ghost button-small" onClick={() => setZoom(zoom === "fit" ? 1 : "fit")}>
              {zoom === "fit" ? "Fit" : `${Math.round(zoom * 100)} %`}
            </button>
            <button type="button" className="button button-ghost button-small" onClick={() => zoomBy(1)} aria-label="Zoom in">
              +
            </button>
          </span>
        )}
        <button type="button" className="button button-ghost button-small lightbox-close" onClick={onClose} aria-label="Close">
          ✕
        </button>
      </div>
      <div
        ref={stage}
        className={`lightbox-stage${zoomed ? " lightbox-zoomed" : ""}`}
        onClick={(e) => {
          if (e.target === e.currentTarget) onClose();
        }}
      >
        <div
          className="lightbox-frame"
          style={zoomed && output.width ? { width: output.width * (zoom as number) } : undefined}
          onClick={() => picture && setZoom(zoom === "fit" ? 1 : "fit")}
        >
          <OutputView output={output} className="lightbox-output" />
        </div>
      </div>
      <button
        type="button"
        className="lightbox-nav lightbox-prev"
        onClick={() => go(index - 1)}
        disabled={index === 0}
        aria-label="Previous result"
      >
        ‹
      </button>
      <button
        type="button"
        className="lightbox-nav lightbox-next"
        onClick={() => go(index + 1)}
        disabled={index >= count - 1}
        aria-label="Next result"
      >
        ›
      </button>
      <div className="lightbox-actions">
        <a className="button button-small" href={output.downloadUrl} download data-testid="download">
          Download
        </a>
        {actions !== false && <ResultActions output={output} origin={origin} />}
      </div>
    </div>,
    document.body,
  );
}

function ResultActions({ output, origin }: { output: Output; origin: Origin | null }): ReactNode {
  const { targets, canVary, busy, message, sendToTemplate, varySeed } = useResultActions(origin);
  return (
    <>
      {isPicture(output) &&
        targets.map((t) => (
          <button
            key={t.name}
            type="button"
            className="button button-small"
            disabled={busy !== null}
            onClick={() => void sendToTemplate(output, t)}
          >
            {busy === `input:${t.name}` ? "Uploading…" : `Use in ${t.title}`}
          </button>
        ))}
      {canVary && (
        <button type="button" className="button button-small" disabled={busy !== null} onClick={() => void varySeed()}>
          {busy === "vary" ? "Queuing…" : "Vary seed"}
        </button>
      )}
      {message && (
        <p className="field-error lightbox-message" role="alert">
          {message}
        </p>
      )}
    </>
  );
}
