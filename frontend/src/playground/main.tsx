import { GraphiQL } from "graphiql";
import "graphiql/style.css";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { EXAMPLES } from "./examples";
import { createPlaygroundFetcher, initialHeaders } from "./fetcher";
import "./playground.css";

/** The GraphQL playground served at GET /graphql: GraphiQL from this app's own bundle, nothing from a CDN. */
async function start(root: HTMLElement) {
  const headers = await initialHeaders();
  const tabs = EXAMPLES.map(({ query, variables }) => ({ query, variables, headers }));
  createRoot(root).render(
    <StrictMode>
      <GraphiQL
        fetcher={createPlaygroundFetcher()}
        defaultTabs={tabs}
        defaultHeaders={headers}
        defaultEditorToolsVisibility="variables"
        forcedTheme="dark"
        shouldPersistHeaders={false}
      >
        <GraphiQL.Logo>
          <a className="playground-logo" href="/">
            <span className="playground-mark" aria-hidden="true" />
            Safelight
          </a>
        </GraphiQL.Logo>
      </GraphiQL>
    </StrictMode>,
  );
}

void start(document.getElementById("playground") as HTMLElement);
