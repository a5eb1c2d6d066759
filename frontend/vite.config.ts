import { defineConfig } from "vitest/config";

// The dashboard is served by the gateway at `/`, on the same origin as `/api/v2/...`.
// `base: "./"` keeps the built asset URLs relative, so dist/ also works under a sub-path.
export default defineConfig({
  base: "./",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: true,
  },
  test: {
    include: ["test/**/*.test.ts"],
    environment: "node",
    restoreMocks: true,
  },
});
