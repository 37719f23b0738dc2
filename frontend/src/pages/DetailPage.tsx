import { useQuery } from "@apollo/client/react";
import { Fragment } from "react";
import { Link, useNavigate, useParams } from "react-router";
import { FormDataQuery, GenerationQuery } from "../api/operations";
import { ConfirmButton } from "../components/ConfirmButton";
import { formatBytes, formatDate, formatDuration } from "../components/format";
import { ImageGrid } from "../components/ImageGrid";
import { ProgressBar } from "../components/ProgressBar";
import { StatusBadge } from "../components/StatusBadge";
import { paramLabel } from "../form/ParamField";
import { presetForm, valuesFromParameters } from "../form/values";
import type { GenerationFieldsFragment } from "../gql/graphql";
import { useGenerationActions } from "../generation/actions";
import { EventLog } from "../generation/EventLog";
import { useGenerationEvents } from "../generation/useGenerationEvents";
import { CURRENT_KEY } from "../generation/current";
import { kindLabel } from "../results/OutputView";
import { InputThumb } from "../form/ImageDrop";
import { isApiWorkflow } from "../form/workflowImport";
import "./DetailPage.css";

export function DetailPage() {
  const { id = "" } = useParams();
  const { data, loading, error } = useQuery(GenerationQuery, { variables: { id }, fetchPolicy: "cache-and-network" });
  if (error) {
    return (
      <div className="alert alert-error" role="alert">
        Could not load this generation: {error.message}
      </div>
    );
  }
  if (!data?.generation) {
    if (loading) return <div className="panel skeleton" aria-busy="true" aria-label="Loading" />;
    return (
      <div className="empty">
        <h2>Not found</h2>
        <p className="muted">
          This generation doesn't exist or isn't yours. <Link to="/history">Back to history</Link>
        </p>
      </div>
    );
  }
  const g = data.generation;
  return <Detail key={`${g.id}:${g.attempt}`} generation={g} />;
}

const camelName = (k: string) => k.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

/** A stored parameter as people read it: inputs as their picture, a raw workflow by its size, JSON short. */
function ParamValue({ value, type }: { value: unknown; type: string | undefined }) {
  if (value === "" || value === null || value === undefined) return <>—</>;
  if ((type === "IMAGE" || type === "MASK") && typeof value === "string") return <InputThumb id={value} />;
  if (typeof value === "object") {
    if (isApiWorkflow(value)) return <>a workflow of {Object.keys(value).length} nodes</>;
    const json = JSON.stringify(value);
    return <span className="mono">{json.length > 200 ? `${json.slice(0, 200)}…` : json}</span>;
  }
  return <>{String(value)}</>;
}

const time = (iso: string | null) => (iso ? Date.parse(iso) : null);
const span = (from: number | null, to: number | null) => (from !== null && to !== null ? to - from : null);

function Detail({ generation }: { generation: GenerationFieldsFragment }) {
  // One subscription for the page: the live state and the event log both come from it.
  const { live, log } = useGenerationEvents(generation.id, generation, { log: true });
  const actions = useGenerationActions(generation.id);
  const navigate = useNavigate();
  const forms = useQuery(FormDataQuery);
  const g = live.generation && live.generation.lastSeq >= generation.lastSeq ? live.generation : generation;
  const images = live.images.length ? live.images : g.images;
  const status = live.status ?? g.status;
  const created = time(g.createdAt);
  const started = live.startedAt ?? time(g.startedAt);
  const finished = live.finishedAt ?? time(g.finishedAt);
  const params = (g.parameters && typeof g.parameters === "object" ? g.parameters : {}) as Record<string, unknown>;
  const template = forms.data?.templates.find((t) => t.name === g.template);
  const error = live.error ?? g.error;

  const useAgain = () => {
    if (!template) return;
    presetForm(template.name, valuesFromParameters(template, g.parameters));
    navigate("/");
  };
  const watch = () => {
    localStorage.setItem(CURRENT_KEY, g.id);
    navigate("/");
  };

  return (
    <article className="detail">
      <header className="detail-header">
        <div>
          <p className="eyebrow">
            <Link to="/history">History</Link> / {g.template}
          </p>
          <h1 className="detail-title">{g.prompt}</h1>
        </div>
        <StatusBadge status={status} progress={live.terminal ? null : live.progress} />
      </header>
      {!live.terminal && <ProgressBar live={live} />}
      {error && live.terminal && status !== "SUCCEEDED" && (
        <div className="alert alert-error" role="alert" data-testid="detail-error">
          <strong>{error.message}</strong>
          <dl className="inline-dl">
            <dt>Code</dt>
            <dd>{error.code}</dd>
            {error.node && (
              <>
                <dt>Failing node</dt>
                <dd>{error.node}</dd>
              </>
            )}
            {error.input && (
              <>
                <dt>Input</dt>
                <dd>{error.input}</dd>
              </>
            )}
            <dt>Retryable</dt>
            <dd>{error.retryable ? "yes" : "no"}</dd>
          </dl>
        </div>
      )}
      <div className="actions detail-actions">
        <button type="button" className="button button-primary" onClick={useAgain} disabled={!template}>
          Use these settings again
        </button>
        {!live.terminal && status !== "CANCELLING" && (
          <>
            <button type="button" className="button" onClick={watch}>
              Watch on Generate
            </button>
            <button type="button" className="button" onClick={() => void actions.cancel()}>
              Cancel
            </button>
          </>
        )}
        {(status === "FAILED" || status === "CANCELLED") && (
          <ConfirmButton
            label="Retry"
            question="Run again?"
            confirmLabel="Retry"
            tone="neutral"
            onConfirm={() => void actions.retry()}
          />
        )}
        <ConfirmButton
          label="Delete"
          question="Delete this generation and its images?"
          confirmLabel="Delete"
          className="button button-ghost"
          onConfirm={() => void actions.remove().then((ok) => ok && navigate("/history"))}
        />
      </div>
      {actions.message && (
        <p className="field-error" role="alert">
          {actions.message}
        </p>
      )}
      <ImageGrid images={images} full origin={g} />
      <div className="detail-columns">
        <section className="panel" aria-labelledby="params-title">
          <h2 id="params-title">Parameters</h2>
          <dl className="kv">
            <dt>Seed used</dt>
            <dd data-testid="seed-used">{g.seedUsed}</dd>
            {Object.entries(params)
              .filter(([k]) => k !== "seed" && k !== "prompt" && k !== "loras")
              .map(([k, v]) => (
                <Fragment key={k}>
                  <dt>{paramLabel(camelName(k))}</dt>
                  <dd>
                    <ParamValue value={v} type={template?.params.find((p) => p.name === camelName(k))?.type} />
                  </dd>
                </Fragment>
              ))}
            <dt>LoRAs</dt>
            <dd>{g.loras.length ? g.loras.map((l) => `${l.name} (${l.strength})`).join(", ") : "none"}</dd>
          </dl>
        </section>
        <section className="panel" aria-labelledby="timing-title">
          <h2 id="timing-title">Run</h2>
          <dl className="kv">
            <dt>Created</dt>
            <dd>{formatDate(g.createdAt)}</dd>
            <dt>Started</dt>
            <dd>{started ? formatDate(started) : "—"}</dd>
            <dt>Finished</dt>
            <dd>{finished ? formatDate(finished) : "—"}</dd>
            <dt>Waited</dt>
            <dd>{formatDuration(span(created, started))}</dd>
            <dt>Ran for</dt>
            <dd>{formatDuration(span(started, finished))}</dd>
            <dt>Attempts</dt>
            <dd>{live.attempt || g.attempt}</dd>
            <dt>Backend</dt>
            <dd>{g.backend ?? "—"}</dd>
            <dt>Prompt id</dt>
            <dd className="mono">{g.promptId ?? "—"}</dd>
            <dt>Images</dt>
            <dd>
              {images.length
                ? images.map((i) => `${i.width && i.height ? `${i.width}×${i.height}` : kindLabel(i)}, ${formatBytes(i.sizeBytes)}`).join("; ")
                : "none"}
            </dd>
            <dt>Generation id</dt>
            <dd className="mono">{g.id}</dd>
          </dl>
        </section>
        <EventLog entries={log} />
      </div>
    </article>
  );
}
