import { resolve } from "node:path";
import { defineConfig } from "vitest/config";

// The dashboard is served by the gateway at `/`, on the same origin as `/api/v2/...`.
// `base: "./"` keeps the built asset URLs relative, so dist/ also works under a sub-path.
// Two pages: the dashboard (index.html) and the devstack's trace view (trace.html).
export default defineConfig({
  base: "./",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: true,
    rollupOptions: {
      input: { main: resolve(import.meta.dirname, "index.html"), trace: resolve(import.meta.dirname, "trace.html") },
    },
  },
  test: {
    include: ["test/**/*.test.ts"],
    environment: "node",
    restoreMocks: true,
  },
});
