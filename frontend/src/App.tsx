import { ApolloProvider, useQuery } from "@apollo/client/react";
import { useEffect, useRef, useState, useSyncExternalStore, type FormEvent } from "react";
import { BrowserRouter, NavLink, Route, Routes, useLocation } from "react-router";
import { createSafelightClient, type SafelightClient } from "./api/client";
import type { ConnectionStore } from "./api/connection";
import { InputsContext } from "./api/inputs";
import { ViewerQuery } from "./api/operations";
import { devToken, obtainToken, rememberSignIn } from "./auth/token";
import { DetailPage } from "./pages/DetailPage";
import { GeneratePage } from "./pages/GeneratePage";
import { HistoryPage } from "./pages/HistoryPage";
import { SystemPage } from "./pages/SystemPage";
import "./App.css";

type Auth =
  | { state: "loading" }
  | { state: "ask"; reason: string | null; signedOut?: boolean }
  | { state: "ready"; client: SafelightClient };

export function App() {
  const [auth, setAuth] = useState<Auth>({ state: "loading" });
  useEffect(() => {
    let live = true;
    void obtainToken().then((token) => {
      if (live) setAuth(token ? { state: "ready", client: createSafelightClient(token) } : { state: "ask", reason: null });
    });
    return () => {
      live = false;
    };
  }, []);
  if (auth.state === "loading") return <Splash />;
  if (auth.state === "ask") {
    return (
      <TokenForm
        reason={auth.reason}
        onToken={(token) => {
          rememberSignIn(token);
          setAuth({ state: "ready", client: createSafelightClient(token) });
        }}
      />
    );
  }
  const { client } = auth;
  return (
    <ApolloProvider client={client.apollo}>
      <InputsContext.Provider value={client.inputs}>
        <BrowserRouter>
          <Shell
            connection={client.connection}
            onRejected={(reason) => {
              rememberSignIn(null);
              client.dispose();
              setAuth({ state: "ask", reason });
            }}
          />
        </BrowserRouter>
      </InputsContext.Provider>
    </ApolloProvider>
  );
}

function Splash() {
  return (
    <div className="splash" aria-busy="true">
      <span className="brand-mark" aria-hidden="true" /> Safelight
    </div>
  );
}

/**
 * Sign in with an API token. In dev mode (the API hands local browsers the dev user's token) it
 * offers that too: signing out sticks across reloads, and signing back in is one click.
 */
export function TokenForm({
  reason,
  onToken,
  fetcher = fetch,
}: {
  reason: string | null;
  onToken: (token: string) => void;
  fetcher?: typeof fetch;
}) {
  const [value, setValue] = useState("");
  const [dev, setDev] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    void devToken(fetcher).then((token) => live && setDev(token));
    return () => {
      live = false;
    };
  }, [fetcher]);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (value.trim()) onToken(value.trim());
  };
  return (
    <main className="token-page">
      <form className="panel token-form" onSubmit={submit}>
        <h1>
          <span className="brand-mark" aria-hidden="true" /> Safelight
        </h1>
        <p className="muted">Sign in with an API token. It stays in this browser.</p>
        {reason && (
          <div className={`alert ${reason === SIGNED_OUT ? "alert-info" : "alert-error"}`} role="alert">
            {reason}
          </div>
        )}
        {dev && (
          <div className="dev-signin" data-testid="dev-signin">
            <p className="muted">
              This server runs in dev mode: it signs local browsers in as the dev user. You stay signed out until you
              choose.
            </p>
            <button type="button" className="button" onClick={() => onToken(dev)}>
              Continue as the dev user
            </button>
          </div>
        )}
        <label htmlFor="token">API token</label>
        <input
          id="token"
          type="password"
          autoComplete="current-password"
          value={value}
          onChange={(e) => setValue(e.target.value)}
          required
        />
        <button type="submit" className="button button-primary">
          Continue
        </button>
      </form>
    </main>
  );
}

function Shell({ connection, onRejected }: { connection: ConnectionStore; onRejected: (reason: string) => void }) {
  const { data, loading, error } = useQuery(ViewerQuery);
  const viewer = data?.viewer;
  useEffect(() => {
    if (!loading && !error && data && !viewer) onRejected("That token was not accepted.");
  }, [loading, error, data, viewer, onRejected]);
  if (!viewer) {
    if (error) {
      return (
        <main className="token-page">
          <div className="alert alert-error" role="alert">
            Can't reach the Safelight API: {error.message}
          </div>
        </main>
      );
    }
    return <Splash />;
  }
  const signOut = () => onRejected(SIGNED_OUT);
  return <Frame connection={connection} viewer={viewer} signOut={signOut} />;
}

/**
 * The sticky top (bar and connection banner) publishes its height as `--top-h`, so what sticks or
 * scrolls below it (the live panel) clears it exactly, banner or not, one line of nav or two.
 */
function useTopHeight() {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = ref.current;
    if (!el || typeof ResizeObserver === "undefined") return;
    const observer = new ResizeObserver(() => {
      document.documentElement.style.setProperty("--top-h", `${Math.ceil(el.getBoundingClientRect().height)}px`);
    });
    observer.observe(el);
    return () => observer.disconnect();
  }, []);
  return ref;
}

function Frame({
  connection,
  viewer,
  signOut,
}: {
  connection: ConnectionStore;
  viewer: { isAdmin: boolean; name: string };
  signOut: () => void;
}) {
  const top = useTopHeight();
  return (
    <div className="app">
      <a href="#main" className="skip-link">
        Skip to content
      </a>
      <div className="top" ref={top}>
        <header className="topbar">
          <NavLink to="/" className="brand">
            <span className="brand-mark" aria-hidden="true" />
            Safelight
          </NavLink>
          <nav aria-label="Main">
            <NavLink to="/" end>
              Generate
            </NavLink>
            <HistoryLink />
            {viewer.isAdmin && <NavLink to="/system">System</NavLink>}
          </nav>
          <div className="user">
            <ConnectionDot connection={connection} />
            <span className="user-name">{viewer.name}</span>
            <button type="button" className="button button-ghost button-small" onClick={signOut}>
              Sign out
            </button>
          </div>
        </header>
        <ConnectionBanner connection={connection} />
      </div>
      <main id="main" className="content">
        <Routes>
          <Route path="/" element={<GeneratePage />} />
          <Route path="/history" element={<HistoryPage />} />
          <Route path="/generations/:id" element={<DetailPage />} />
          <Route
            path="/system"
            element={viewer.isAdmin ? <SystemPage /> : <p className="muted">The system page is for administrators.</p>}
          />
          <Route path="*" element={<p className="muted">There's nothing here.</p>} />
        </Routes>
      </main>
    </div>
  );
}

const SIGNED_OUT = "Signed out.";

/** History is the current section on a generation's detail page too. */
function HistoryLink() {
  const { pathname } = useLocation();
  const detail = pathname.startsWith("/generations/");
  return (
    <NavLink
      to="/history"
      className={({ isActive }) => (isActive || detail ? "active" : undefined)}
      aria-current={detail ? "page" : undefined}
    >
      History
    </NavLink>
  );
}

function useConnection(connection: ConnectionStore) {
  return useSyncExternalStore(connection.subscribe, connection.getSnapshot);
}

function ConnectionDot({ connection }: { connection: ConnectionStore }) {
  const { phase } = useConnection(connection);
  const label = { idle: "Live updates idle", connecting: "Connecting", connected: "Live", reconnecting: "Reconnecting", rejected: "Disconnected" }[phase];
  return <span className={`dot dot-${phase}`} title={label} role="img" aria-label={label} />;
}

export function ConnectionBanner({ connection }: { connection: ConnectionStore }) {
  const state = useConnection(connection);
  if (state.phase !== "reconnecting" && state.phase !== "rejected") return null;
  return (
    <div className={`banner banner-${state.phase}`} role="status" data-testid="connection-banner">
      {state.phase === "reconnecting"
        ? `Connection lost — reconnecting${state.retryInSeconds ? ` in ${state.retryInSeconds} s.` : "…"} Live updates resume where they left off.`
        : `Live updates stopped: ${state.message ?? "the server refused the connection"}.`}
    </div>
  );
}
