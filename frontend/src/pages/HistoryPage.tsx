import { useQuery, useSubscription } from "@apollo/client/react";
import { useEffect, useState } from "react";
import { Link, useSearchParams } from "react-router";
import { GenerationsQuery, MyGenerationEventsSubscription } from "../api/operations";
import { ConfirmButton } from "../components/ConfirmButton";
import { STATUS_LABEL, relativeTime } from "../components/format";
import { ProgressBar } from "../components/ProgressBar";
import { StatusBadge } from "../components/StatusBadge";
import { useNow } from "../components/useNow";
import type { GenerationFieldsFragment, Status } from "../gql/graphql";
import { useGenerationActions } from "../generation/actions";
import { useGenerationEvents } from "../generation/useGenerationEvents";
import { kindLabel } from "../results/OutputView";
import "./HistoryPage.css";

const PAGE = 24;
const STATUSES: Status[] = ["QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"];

export function HistoryPage() {
  const [params, setParams] = useSearchParams();
  const status = (params.get("status") as Status | null) ?? null;
  const search = params.get("q") ?? "";
  const [searchText, setSearchText] = useState(search);

  useEffect(() => {
    const timer = setTimeout(() => {
      if (searchText === search) return;
      setParams((p) => {
        const next = new URLSearchParams(p);
        if (searchText) next.set("q", searchText);
        else next.delete("q");
        return next;
      }, { replace: true });
    }, 300);
    return () => clearTimeout(timer);
  }, [searchText, search, setParams]);

  const variables = {
    first: PAGE,
    after: null,
    status: status ? (status === "RUNNING" ? (["RUNNING", "CANCELLING"] as Status[]) : [status]) : null,
    search: search || null,
  };
  const { data, loading, error, fetchMore, refetch } = useQuery(GenerationsQuery, {
    variables,
    notifyOnNetworkStatusChange: true,
    fetchPolicy: "cache-and-network",
  });
  const edges = data?.generations.edges ?? [];
  const known = new Set(edges.map((e) => e.node.id));

  // New generations (made in another tab, or by a retry elsewhere) appear without a reload.
  useSubscription(MyGenerationEventsSubscription, {
    ignoreResults: true,
    onData: ({ data: event }) => {
      const e = event.data?.myGenerationEvents;
      if (e && e.kind === "STATUS" && e.status === "QUEUED" && !known.has(e.generationId)) void refetch();
    },
  });

  const [loadingMore, setLoadingMore] = useState(false);
  const loadMore = async () => {
    setLoadingMore(true);
    try {
      await fetchMore({ variables: { after: data?.generations.pageInfo.endCursor } });
    } finally {
      setLoadingMore(false);
    }
  };

  return (
    <div className="history">
      <div className="toolbar" role="search">
        <div className="toolbar-search">
          <label htmlFor="search" className="sr-only">
            Search prompts
          </label>
          <input
            id="search"
            type="search"
            placeholder="Search prompts"
            value={searchText}
            onChange={(e) => setSearchText(e.target.value)}
          />
        </div>
        <div className="toolbar-filter">
          <label htmlFor="status-filter">Status</label>
          <select
            id="status-filter"
            value={status ?? ""}
            onChange={(e) =>
              setParams((p) => {
                const next = new URLSearchParams(p);
                if (e.target.value) next.set("status", e.target.value);
                else next.delete("status");
                return next;
              })
            }
          >
            <option value="">All</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {STATUS_LABEL[s]}
              </option>
            ))}
          </select>
        </div>
      </div>
      {error && (
        <div className="alert alert-error" role="alert">
          Could not load your generations: {error.message}
        </div>
      )}
      {!loading && edges.length === 0 && !error && (
        <div className="empty">
          <h2>{search || status ? "Nothing matches" : "No generations yet"}</h2>
          <p className="muted">
            {search || status ? "Try another search or status." : <Link to="/">Generate your first image.</Link>}
          </p>
        </div>
      )}
      <ul className="gallery" aria-label="Generations" data-testid="gallery">
        {edges.map(({ node }) => (
          <li key={`${node.id}:${node.attempt}`}>
            <GenerationCard generation={node} />
          </li>
        ))}
      </ul>
      {loading && edges.length === 0 && <div className="skeleton-grid" aria-busy="true" aria-label="Loading" />}
      {data?.generations.pageInfo.hasNextPage && (
        <div className="load-more">
          <button
            type="button"
            className="button"
            onClick={() => void loadMore()}
            disabled={loadingMore}
            aria-busy={loadingMore}
            data-testid="load-more"
          >
            {loadingMore ? "Loading…" : "Load more"}
          </button>
        </div>
      )}
    </div>
  );
}

/**
 * One card; it follows its generation live while it runs (from the record's lastSeq, so a reload
 * reattaches without missing anything). One component for every state, so finishing doesn't remount it.
 */
function GenerationCard({ generation }: { generation: GenerationFieldsFragment }) {
  const { live } = useGenerationEvents(generation.id, generation);
  const now = useNow(false);
  const actions = useGenerationActions(generation.id);
  const status = live.status ?? generation.status;
  const images = live.images.length ? live.images : generation.images;
  const first = images[0];
  const preview = live.terminal ? null : live.previewUrl;
  const error = live.error ?? generation.error;
  if (live.deleted) return null;
  const failed = status === "FAILED" || status === "CANCELLED";
  return (
    <article className="card" aria-label={generation.prompt} data-status={status} data-testid="generation-card">
      <Link to={`/generations/${generation.id}`} className="card-media" aria-label={`Open: ${generation.prompt}`}>
        {first && (first.thumbnailUrl || first.kind === "ANIMATION") ? (
          <img
            src={first.thumbnailUrl ?? first.url}
            alt=""
            loading="lazy"
            width={first.width ?? undefined}
            height={first.height ?? undefined}
          />
        ) : first ? (
          <span className="card-placeholder card-kind">{kindLabel(first)}</span>
        ) : preview ? (
          <img src={preview} alt="" />
        ) : (
          <span className="card-placeholder" aria-hidden="true">
            {failed ? "✕" : "…"}
          </span>
        )}
        {images.length > 1 && <span className="card-count">{images.length}</span>}
      </Link>
      <div className="card-body">
        <div className="card-top">
          <StatusBadge status={status} progress={live.terminal ? null : live.progress} />
          <time dateTime={generation.createdAt} className="muted">
            {relativeTime(Date.parse(generation.createdAt), now)}
          </time>
        </div>
        <p className="card-prompt" title={generation.prompt}>
          {generation.prompt}
        </p>
        {!live.terminal && <ProgressBar live={live} compact />}
        {status === "FAILED" && error && <p className="card-error">{error.message}</p>}
        <div className="card-actions">
          {failed && (
            <ConfirmButton
              label="Retry"
              question="Run again?"
              confirmLabel="Retry"
              tone="neutral"
              className="button button-small"
              onConfirm={() => void actions.retry()}
            />
          )}
          {!live.terminal && status !== "CANCELLING" && (
            <button type="button" className="button button-small" onClick={() => void actions.cancel()}>
              Cancel
            </button>
          )}
          <ConfirmButton
            label="Delete"
            question="Delete for good?"
            confirmLabel="Delete"
            className="button button-ghost button-small"
            onConfirm={() => void actions.remove()}
          />
        </div>
        {actions.message && (
          <p className="field-error" role="alert">
            {actions.message}
          </p>
        )}
      </div>
    </article>
  );
}
