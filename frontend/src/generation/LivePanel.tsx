import { Link } from "react-router";
import { STATUS_LABEL } from "../components/format";
import { ImageGrid } from "../components/ImageGrid";
import { ProgressBar } from "../components/ProgressBar";
import { StatusBadge } from "../components/StatusBadge";
import { useGenerationActions } from "./actions";
import { useGenerationEvents } from "./useGenerationEvents";
import "./LivePanel.css";

/** The generation just submitted: live progress, previews, cancel, and the results. */
export function LivePanel({ id, onDismiss, focus = false }: { id: string; onDismiss: () => void; focus?: boolean }) {
  const { live, error } = useGenerationEvents(id);
  const actions = useGenerationActions(id);
  const prompt = live.generation?.prompt;
  const showPreview = !live.terminal && live.previewUrl && live.images.length === 0;
  return (
    <section className="panel live-panel" aria-labelledby="live-title" data-testid="live-panel">
      <header className="panel-header">
        <h2
          id="live-title"
          className="focus-target"
          tabIndex={-1}
          ref={(el) => {
            // After a submit, move focus here for screen readers (no visible ring: it's not a control)
            // and bring the panel into view below the sticky top bar (it sits above the form on phones).
            if (el && focus) {
              el.focus({ preventScroll: true });
              el.closest("section")?.scrollIntoView?.({ block: "nearest" });
            }
          }}
        >
          Current generation
        </h2>
        <StatusBadge status={live.status} progress={live.progress} />
      </header>
      {live.deleted ? (
        <p className="muted">This generation was deleted.</p>
      ) : (
        <>
          {prompt && <p className="live-prompt">{prompt}</p>}
          <p className="sr-only" aria-live="polite">
            {live.status ? `Generation ${STATUS_LABEL[live.status].toLowerCase()}` : ""}
          </p>
          <ProgressBar live={live} />
          {live.error && live.terminal && live.status !== "SUCCEEDED" && (
            <div className="alert alert-error" role="alert">
              <strong>{live.error.message}</strong>
              {live.error.node && (
                <span>
                  {" "}
                  — at node {live.error.node}
                  {live.error.input && <>, input {live.error.input}</>}
                </span>
              )}
              <span className="muted"> ({live.error.code})</span>
            </div>
          )}
          {error && (
            <div className="alert alert-error" role="alert">
              Lost the live feed: {error.message}
            </div>
          )}
          <div className="stage" aria-live="polite">
            {showPreview ? (
              <img className="preview" src={live.previewUrl ?? ""} alt="Preview of the image as it develops" data-testid="preview" />
            ) : live.images.length > 0 ? (
              <ImageGrid images={live.images} origin={live.generation} />
            ) : (
              <div className="stage-empty">{live.terminal ? "No images" : "The image develops here"}</div>
            )}
          </div>
          <div className="actions">
            {!live.terminal && live.status !== "CANCELLING" && (
              <button type="button" className="button" onClick={() => void actions.cancel()} disabled={actions.busy}>
                Cancel
              </button>
            )}
            {live.terminal && (
              <button type="button" className="button button-ghost" onClick={onDismiss}>
                Dismiss
              </button>
            )}
            <Link className="button button-ghost" to={`/generations/${id}`}>
              Details
            </Link>
          </div>
          {actions.message && (
            <p className="field-error" role="alert">
              {actions.message}
            </p>
          )}
        </>
      )}
    </section>
  );
}
