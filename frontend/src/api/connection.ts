/**
 * The live connection's state, as a tiny external store for `useSyncExternalStore`.
 *
 * "reconnecting" means a subscription lost its socket and waits to resume; a quiet,
 * lazily closed socket (no subscriptions) stays "idle" and shows nothing.
 */
export type ConnectionPhase = "idle" | "connecting" | "connected" | "reconnecting" | "rejected";

export interface ConnectionState {
  phase: ConnectionPhase;
  /** Incremented on every successful reconnect after a drop (0 until the first). */
  reconnects: number;
  /** Seconds until the next attempt while reconnecting. */
  retryInSeconds: number | null;
  message: string | null;
}

type Listener = () => void;

export class ConnectionStore {
  private state: ConnectionState = { phase: "idle", reconnects: 0, retryInSeconds: null, message: null };
  private listeners = new Set<Listener>();
  private dropped = false;

  subscribe = (listener: Listener): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  getSnapshot = (): ConnectionState => this.state;

  connecting(): void {
    if (this.state.phase !== "reconnecting") this.set({ phase: "connecting" });
  }

  connected(): void {
    const reconnects = this.dropped ? this.state.reconnects + 1 : this.state.reconnects;
    this.dropped = false;
    this.set({ phase: "connected", reconnects, retryInSeconds: null, message: null });
  }

  /** A socket carrying subscriptions closed abnormally; they resume in `retryInSeconds`. */
  lost(retryInSeconds: number): void {
    this.dropped = true;
    this.set({ phase: "reconnecting", retryInSeconds, message: null });
  }

  closedQuietly(): void {
    if (this.state.phase === "connected" || this.state.phase === "connecting") this.set({ phase: "idle" });
  }

  rejected(message: string): void {
    this.set({ phase: "rejected", retryInSeconds: null, message });
  }

  private set(patch: Partial<ConnectionState>): void {
    this.state = { ...this.state, ...patch };
    for (const listener of this.listeners) listener();
  }
}
