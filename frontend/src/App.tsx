import { ApolloProvider, useQuery } from "@apollo/client/react";
import { useEffect, useState, useSyncExternalStore, type FormEvent } from "react";
import { BrowserRouter, NavLink, Route, Routes } from "react-router";
import { createSafelightClient, type SafelightClient } from "./api/client";
import type { ConnectionStore } from "./api/connection";
import { ViewerQuery } from "./api/operations";
import { obtainToken, TOKEN_KEY } from "./auth/token";
import { DetailPage } from "./pages/DetailPage";
import { GeneratePage } from "./pages/GeneratePage";
import { HistoryPage } from "./pages/HistoryPage";
import { SystemPage } from "./pages/SystemPage";

type Auth = { state: "loading" } | { state: "ask"; reason: string | null } | { state: "ready"; client: SafelightClient };

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
          localStorage.setItem(TOKEN_KEY, token);
          setAuth({ state: "ready", client: createSafelightClient(token) });
        }}
      />
    );
  }
  const { client } = auth;
  return (
    <ApolloProvider client={client.apollo}>
      <BrowserRouter>
        <Shell
          connection={client.connection}
          onRejected={(reason) => {
            localStorage.removeItem(TOKEN_KEY);
            client.dispose();
            setAuth({ state: "ask", reason });
          }}
        />
      </BrowserRouter>
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

function TokenForm({ reason, onToken }: { reason: string | null; onToken: (token: string) => void }) {
  const [value, setValue] = useState("");
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
          <div className="alert alert-error" role="alert">
            {reason}
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
  const signOut = () => onRejected("Signed out.");
  return (
    <div className="app">
      <a href="#main" className="skip-link">
        Skip to content
      </a>
      <header className="topbar">
        <NavLink to="/" className="brand">
          <span className="brand-mark" aria-hidden="true" />
          Safelight
        </NavLink>
        <nav aria-label="Main">
          <NavLink to="/" end>
            Generate
          </NavLink>
          <NavLink to="/history">History</NavLink>
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
        ? `Connection lost — reconnecting${state.retryInSeconds ? ` in ${state.retryInSeconds} s` : "…"} Live updates resume where they left off.`
        : `Live updates stopped: ${state.message ?? "the server refused the connection"}.`}
    </div>
  );
}
