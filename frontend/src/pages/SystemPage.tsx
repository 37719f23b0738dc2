import { useQuery, useSubscription } from "@apollo/client/react";
import { SystemStatusQuery, SystemStatusSubscription } from "../api/operations";
import { formatDuration, readableBackendError } from "../components/format";
import { useNow } from "../components/useNow";
import "../components/ProgressBar.css";
import "../components/StatusBadge.css";
import "./SystemPage.css";

const gb = (bytes: number) => `${(bytes / 1024 ** 3).toFixed(1)} GB`;

/** A beat can be stamped a moment after this page's clock last ticked: that is "just now", not "— ago". */
export const heartbeatAge = (ms: number) => (ms < 2000 ? "just now" : `${formatDuration(ms)} ago`);

export function SystemPage() {
  const initial = useQuery(SystemStatusQuery);
  const live = useSubscription(SystemStatusSubscription);
  const now = useNow(true, 1000);
  const status = live.data?.systemStatus ?? initial.data?.systemStatus;
  const error = initial.error ?? live.error;
  if (!status) {
    if (error) {
      return (
        <div className="alert alert-error" role="alert">
          {error.message}
        </div>
      );
    }
    return <div className="panel skeleton" aria-busy="true" aria-label="Loading" />;
  }
  const stats: [string, string | number][] = [
    ["Queued", status.queued],
    ["Running", status.running],
    ["Oldest queued", status.oldestQueuedSeconds === null ? "—" : formatDuration(status.oldestQueuedSeconds * 1000)],
    ["Job queue depth", status.arqQueueDepth],
    ["Succeeded (1 h)", status.succeededLastHour],
    ["Failed (1 h)", status.failedLastHour],
    ["Cancelled (1 h)", status.cancelledLastHour],
  ];
  return (
    <div className="system">
      <h1 className="page-title">System</h1>
      <p className="muted">
        Live, updated every 2 seconds. API settings fingerprint <code>{status.fingerprint}</code>
      </p>
      <ul className="stats" aria-label="Queue">
        {stats.map(([label, value]) => (
          <li key={label} className="stat">
            <span className="stat-value">{value}</span>
            <span className="stat-label">{label}</span>
          </li>
        ))}
      </ul>
      <section aria-labelledby="workers-title">
        <h2 id="workers-title">Workers</h2>
        {status.workers.length === 0 && <p className="alert alert-warning">No worker is running: queued work won't start.</p>}
        <div className="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">Worker</th>
                <th scope="col">Version</th>
                <th scope="col">Settings</th>
                <th scope="col">Busy</th>
                <th scope="col">Backends</th>
                <th scope="col">Last heartbeat</th>
              </tr>
            </thead>
            <tbody>
              {status.workers.map((w) => (
                <tr key={w.id}>
                  <td>
                    <strong>{w.host}</strong> <span className="muted">pid {w.pid}</span>
                  </td>
                  <td>{w.version}</td>
                  <td>
                    {w.settingsMatch ? (
                      <span className="badge badge-succeeded">match</span>
                    ) : (
                      <span className="badge badge-failed" title={`worker ${w.fingerprint} ≠ API ${status.fingerprint}`}>
                        mismatch
                      </span>
                    )}
                  </td>
                  <td>
                    {w.inFlight.length} / {w.concurrency}
                  </td>
                  <td className="mono">{w.comfyuiUrls.join(", ")}</td>
                  <td>{heartbeatAge(now - w.lastBeat * 1000)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </section>
      <section aria-labelledby="backends-title">
        <h2 id="backends-title">ComfyUI backends</h2>
        <ul className="backend-list">
          {status.backends.map((b) => (
            <li key={b.url} className="panel backend">
              <div className="backend-head">
                <span className="mono">{b.url}</span>
                <span className={`badge ${b.healthy ? "badge-succeeded" : "badge-failed"}`}>
                  {b.healthy ? "healthy" : "down"}
                </span>
              </div>
              {b.error && (
                <p className="field-error backend-error" title={b.error} data-testid="backend-error">
                  {readableBackendError(b.error)}
                </p>
              )}
              <p className="muted">
                {b.running} running · {b.pending} pending{b.comfyuiVersion && ` · ComfyUI ${b.comfyuiVersion}`}
              </p>
              {b.devices.map((d) => {
                const used = d.vramTotal ? (1 - d.vramFree / d.vramTotal) * 100 : 0;
                return (
                  <div key={d.name} className="gpu">
                    <div className="progress-line">
                      <span>{d.name}</span>
                      <span className="muted">
                        {gb(d.vramTotal - d.vramFree)} of {gb(d.vramTotal)}
                      </span>
                    </div>
                    <div
                      className="progress-track"
                      role="meter"
                      aria-label={`${d.name} memory in use`}
                      aria-valuemin={0}
                      aria-valuemax={100}
                      aria-valuenow={Math.round(used)}
                    >
                      <div className="progress-fill" style={{ width: `${used}%` }} />
                    </div>
                  </div>
                );
              })}
            </li>
          ))}
        </ul>
      </section>
    </div>
  );
}
