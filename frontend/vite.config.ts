import { defineConfig } from "vitest/config";
import react from "@vitejs/plugin-react";

const api = `http://127.0.0.1:${process.env.SAFELIGHT_API_PORT ?? "8000"}`;
const forward = { target: api, changeOrigin: false };

export default defineConfig({
  plugins: [react()],
  server: {
    proxy: {
      "/graphql": { ...forward, ws: true },
      "/images": forward,
      "/thumbs": forward,
      "/previews": forward,
      "/dev": forward,
    },
  },
  build: { sourcemap: true },
  test: {
    environment: "happy-dom",
    setupFiles: ["./src/test/setup.ts"],
    include: ["src/**/*.test.{ts,tsx}"],
    restoreMocks: true,
  },
});
