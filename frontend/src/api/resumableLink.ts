import { ApolloLink } from "@apollo/client";
import { CombinedGraphQLErrors } from "@apollo/client/errors";
import { print } from "@apollo/client/utilities";
import type { FormattedExecutionResult } from "graphql";
import type { Client } from "graphql-ws";
import { Observable } from "rxjs";
import type { ConnectionStore } from "./connection";

/**
 * A terminating link for subscriptions over graphql-ws that survives dropped sockets.
 *
 * graphql-ws alone would re-send the original subscribe message after a reconnect, so a
 * `generationEvents(id)` subscription would start over from a snapshot and a `generationEvents(id,
 * after: n)` one would replay from a stale n. Here the socket client does not retry; when a socket
 * drops, every subscription resubscribes after a backoff with variables from `resumeVariables`:
 * `after` becomes the last sequence number this subscription delivered, so the server replays exactly
 * the durable events that were missed and then goes live. The consumer sees one unbroken stream.
 */

export interface ResumeOptions {
  store: ConnectionStore;
  /** Delay before resubscribe attempt n (1-based), in ms. */
  backoffMs?: (attempt: number) => number;
  schedule?: (fn: () => void, ms: number) => () => void;
}

type Result = FormattedExecutionResult<Record<string, unknown>>;

/** The seq of the last event in a result whose root field is a GenerationEvent, if any. */
export function lastSeqOf(result: Result): number | null {
  const root = result.data ? Object.values(result.data)[0] : null;
  if (root && typeof root === "object" && "seq" in root && typeof root.seq === "number") return root.seq;
  return null;
}

/** Variables for a resubscription: `after` moves to the last sequence number seen, when the operation has it. */
export function resumeVariables(operation: ApolloLink.Operation, lastSeq: number | null): Record<string, unknown> {
  const declared = operation.query.definitions.some(
    (d) => d.kind === "OperationDefinition" && d.variableDefinitions?.some((v) => v.variable.name.value === "after"),
  );
  if (!declared || lastSeq === null) return operation.variables;
  return { ...operation.variables, after: lastSeq };
}

function isCloseLike(err: unknown): err is { code: number; reason: string } {
  return typeof err === "object" && err !== null && "code" in err && "reason" in err;
}

const defaultBackoff = (attempt: number) => Math.min(10_000, 500 * 2 ** Math.min(attempt - 1, 5));
const defaultSchedule = (fn: () => void, ms: number) => {
  const timer = setTimeout(fn, ms);
  return () => clearTimeout(timer);
};

export class ResumableWsLink extends ApolloLink {
  constructor(
    readonly client: Pick<Client, "subscribe">,
    private readonly options: ResumeOptions,
  ) {
    super();
  }

  request(operation: ApolloLink.Operation): Observable<ApolloLink.Result> {
    const { store } = this.options;
    const backoff = this.options.backoffMs ?? defaultBackoff;
    const schedule = this.options.schedule ?? defaultSchedule;
    const query = print(operation.query);

    return new Observable<ApolloLink.Result>((observer) => {
      let lastSeq: number | null = null;
      let failures = 0;
      let stop: (() => void) | null = null;
      let cancelTimer: (() => void) | null = null;
      let closed = false;

      const start = () => {
        const variables = resumeVariables(operation, lastSeq);
        let delivered = false;
        stop = this.client.subscribe<Record<string, unknown>, Record<string, unknown>>(
          { query, variables, operationName: operation.operationName, extensions: operation.extensions },
          {
            next: (result) => {
              if (!delivered) {
                delivered = true;
                failures = 0;
              }
              const seq = lastSeqOf(result);
              if (seq !== null) lastSeq = lastSeq === null ? seq : Math.max(lastSeq, seq);
              observer.next(result as unknown as ApolloLink.Result);
            },
            complete: () => {
              closed = true;
              observer.complete();
            },
            error: (err: unknown) => {
              if (closed) return;
              if (Array.isArray(err)) {
                closed = true;
                observer.error(new CombinedGraphQLErrors({ errors: err }));
                return;
              }
              if (isCloseLike(err) && err.code >= 4400 && err.code < 4500) {
                closed = true;
                store.rejected(err.reason || `connection refused (${err.code})`);
                observer.error(new Error(err.reason || `connection refused (${err.code})`));
                return;
              }
              failures += 1;
              const wait = backoff(failures);
              store.lost(Math.round(wait / 1000));
              cancelTimer = schedule(() => {
                cancelTimer = null;
                if (!closed) start();
              }, wait);
            },
          },
        );
      };

      start();
      return () => {
        closed = true;
        cancelTimer?.();
        stop?.();
      };
    });
  }
}
