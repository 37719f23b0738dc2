import { defineConfig } from "vitest/config";
import react from "@vitejs/plugin-react";
import { copyFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Plugin } from "vite";

/**
 * Also emit index.html as 404.html: Starlette's StaticFiles (html mode) answers unknown paths with
 * 404.html, so client-side routes such as /history survive a reload even where the API's SPA
 * fallback does not catch the 404 (StaticFiles raises rather than returns it).
 */
function spaFallback(): Plugin {
  return {
    name: "safelight-spa-fallback",
    apply: "build",
    writeBundle(options) {
      const dir = options.dir ?? "dist";
      copyFileSync(join(dir, "index.html"), join(dir, "404.html"));
    },
  };
}

const api = `http://127.0.0.1:${process.env.SAFELIGHT_API_PORT ?? "8000"}`;
const forward = { target: api, changeOrigin: false };

export default defineConfig({
  plugins: [react(), spaFallback()],
  server: {
    proxy: {
      "/graphql": { ...forward, ws: true },
      "/images": forward,
      "/thumbs": forward,
      "/previews": forward,
      "/dev": forward,
      "/inputs": forward,
    },
  },
  build: {
    sourcemap: true,
    chunkSizeWarningLimit: 700, // GraphiQL's own chunk (~600 kB), loaded only by the playground page
    rolldownOptions: {
      // The app, and the GraphQL playground the API serves at GET /graphql (graph/playground.py).
      input: { main: resolve(import.meta.dirname, "index.html"), graphiql: resolve(import.meta.dirname, "graphiql.html") },
      output: {
        codeSplitting: {
          groups: [
            { name: "react", test: /node_modules[\\/](react|react-dom|react-router|scheduler)[\\/]/ },
            { name: "apollo", test: /node_modules[\\/](@apollo|graphql|graphql-ws|rxjs|@wry|optimism|tslib)/ },
          ],
        },
      },
    },
  },
  test: {
    environment: "happy-dom",
    setupFiles: ["./src/test/setup.ts"],
    include: ["src/**/*.test.{ts,tsx}"],
    restoreMocks: true,
  },
});
