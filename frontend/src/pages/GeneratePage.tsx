import { useQuery } from "@apollo/client/react";
import { useState } from "react";
import { FormDataQuery } from "../api/operations";
import { GenerateForm } from "../form/GenerateForm";
import { LivePanel } from "../generation/LivePanel";
import "./GeneratePage.css";

export const CURRENT_KEY = "safelight.current";

export function GeneratePage() {
  const { data, loading, error } = useQuery(FormDataQuery);
  const [current, setCurrent] = useState<string | null>(() => localStorage.getItem(CURRENT_KEY));
  const [submitted, setSubmitted] = useState(false);
  const select = (id: string | null) => {
    setSubmitted(id !== null);
    if (id) localStorage.setItem(CURRENT_KEY, id);
    else localStorage.removeItem(CURRENT_KEY);
    setCurrent(id);
  };
  return (
    <div className="generate-layout">
      <div>
        {loading && !data && <div className="panel skeleton" aria-busy="true" aria-label="Loading the form" />}
        {error && (
          <div className="alert alert-error" role="alert">
            Could not load the templates: {error.message}
          </div>
        )}
        {data && <GenerateForm templates={data.templates} catalog={data.catalog} onCreated={select} />}
      </div>
      <div className="live-column">
        {current ? (
          <LivePanel key={current} id={current} focus={submitted} onDismiss={() => select(null)} />
        ) : (
          <section className="panel live-panel live-empty" data-testid="live-empty">
            <h2>Nothing developing yet</h2>
            <p className="muted">
              Describe an image and press Generate. Progress, previews and results appear here as they arrive.
            </p>
          </section>
        )}
      </div>
    </div>
  );
}
