// The global sheet and the shared building blocks come first, so every feature's own stylesheet
// (imported by its component, through App) follows them in the cascade.
import "./styles.css";
import "./components/ui.css";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./App";

createRoot(document.getElementById("root") as HTMLElement).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
