import type {
  EventFieldsFragment,
  GenerationFieldsFragment,
  ImageFieldsFragment,
  ProgressFieldsFragment,
  Status,
} from "../gql/graphql";

/**
 * One generation as a subscriber sees it, folded from its events.
 *
 * The server numbers durable events (STATUS, IMAGE) per generation; ephemeral ones (PROGRESS,
 * PREVIEW) carry the number of the last durable event. So a durable event at or below `lastSeq`
 * is a duplicate (a resumed subscription may replay it), and an ephemeral one below `lastSeq` is
 * older than state we already hold.
 */
export interface LiveGeneration {
  id: string;
  status: Status | null;
  attempt: number;
  progress: ProgressFieldsFragment | null;
  images: ImageFieldsFragment[];
  previewUrl: string | null;
  error: GenerationFieldsFragment["error"];
  lastSeq: number;
  terminal: boolean;
  deleted: boolean;
  /** Epoch milliseconds. */
  createdAt: number | null;
  startedAt: number | null;
  finishedAt: number | null;
  /** The full record, from the seed or the latest SNAPSHOT. */
  generation: GenerationFieldsFragment | null;
}

export type GenerationEventInput = Pick<
  EventFieldsFragment,
  "seq" | "kind" | "at" | "terminal" | "status" | "attempt" | "error" | "progress" | "image" | "previewUrl"
> & { generation?: GenerationFieldsFragment | null };

const TERMINAL: ReadonlySet<Status> = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);

export function isTerminal(status: Status | null | undefined): boolean {
  return status != null && TERMINAL.has(status);
}

const time = (iso: string | null | undefined) => (iso ? Date.parse(iso) : null);

function fromGeneration(id: string, g: GenerationFieldsFragment, seq: number): LiveGeneration {
  return {
    id,
    status: g.status,
    attempt: g.attempt,
    progress: g.progress,
    images: [...g.images].sort((a, b) => a.index - b.index),
    previewUrl: null,
    error: g.error,
    lastSeq: seq,
    terminal: isTerminal(g.status),
    deleted: false,
    createdAt: time(g.createdAt),
    startedAt: time(g.startedAt),
    finishedAt: time(g.finishedAt),
    generation: g,
  };
}

export function initialGeneration(id: string, seed?: GenerationFieldsFragment | null): LiveGeneration {
  if (seed) return fromGeneration(id, seed, seed.lastSeq);
  return {
    id,
    status: null,
    attempt: 0,
    progress: null,
    images: [],
    previewUrl: null,
    error: null,
    lastSeq: -1,
    terminal: false,
    deleted: false,
    createdAt: null,
    startedAt: null,
    finishedAt: null,
    generation: null,
  };
}

function withImage(images: ImageFieldsFragment[], image: ImageFieldsFragment): ImageFieldsFragment[] {
  return [...images.filter((i) => i.index !== image.index), image].sort((a, b) => a.index - b.index);
}

export function applyEvent(state: LiveGeneration, event: GenerationEventInput): LiveGeneration {
  switch (event.kind) {
    case "SNAPSHOT":
      if (!event.generation || event.seq < state.lastSeq) return state;
      return fromGeneration(state.id, event.generation, event.seq);
    case "DELETED":
      return { ...state, deleted: true, terminal: true, previewUrl: null };
    case "PROGRESS":
    case "PREVIEW":
      if (state.terminal || event.seq < state.lastSeq) return state;
      if (event.kind === "PREVIEW") return event.previewUrl ? { ...state, previewUrl: event.previewUrl } : state;
      return event.progress ? { ...state, progress: forward(state.progress, event.progress) } : state;
    case "STATUS":
    case "IMAGE": {
      if (event.seq <= state.lastSeq) return state;
      const next = { ...state, lastSeq: event.seq };
      if (event.kind === "IMAGE") return event.image ? { ...next, images: withImage(state.images, event.image) } : next;
      return applyStatus(next, event);
    }
    default:
      return state;
  }
}

/**
 * Progress within one attempt never goes back: an event with a lower percent (a late event, or a
 * backend that restarted the prompt) keeps the highest percent seen, with the new phase and details.
 * A new attempt (STATUS QUEUED with a higher attempt) resets it in `applyStatus`.
 */
function forward(previous: ProgressFieldsFragment | null, next: ProgressFieldsFragment): ProgressFieldsFragment {
  if (!previous || next.phase === "RETRY_WAIT" || next.percent >= previous.percent) return next;
  return { ...next, percent: previous.percent };
}

function retryWait(previous: ProgressFieldsFragment | null): ProgressFieldsFragment {
  return {
    emittedAt: previous?.emittedAt ?? null,
    reason: null,
    retryAt: null,
    deadlineAt: null,
    phase: "RETRY_WAIT",
    percent: 0,
    node: null,
    nodeClass: null,
    step: null,
    maxSteps: null,
    queuePosition: null,
  };
}

function applyStatus(state: LiveGeneration, event: GenerationEventInput): LiveGeneration {
  const status = event.status ?? state.status;
  const at = event.at * 1000;
  const attempt = event.attempt ?? state.attempt;
  if (attempt > state.attempt && status === "QUEUED") {
    // A retry: a new attempt starts from scratch, waiting to retry as the record says after a reload;
    // the error that caused it stays, as the reason (the record keeps it too).
    return {
      ...state,
      status,
      attempt,
      progress: retryWait(state.progress),
      images: [],
      previewUrl: null,
      error: event.error ?? null,
      terminal: false,
      startedAt: null,
      finishedAt: null,
    };
  }
  const terminal = event.terminal || isTerminal(status);
  return {
    ...state,
    status,
    attempt,
    // An attempt's error belongs to that attempt: a success has none.
    error: status === "SUCCEEDED" ? null : (event.error ?? (terminal ? state.error : null)),
    terminal,
    previewUrl: terminal ? null : state.previewUrl,
    startedAt: status === "RUNNING" && state.startedAt === null ? at : state.startedAt,
    finishedAt: terminal ? (state.finishedAt ?? at) : null,
  };
}
