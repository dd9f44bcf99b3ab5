import { defineConfig } from "tsup";

export default defineConfig([
  // the package: ESM and CJS with their types, socket.io-client left to the app's bundler
  {
    entry: { index: "src/index.ts" },
    format: ["esm", "cjs"],
    dts: true,
    sourcemap: true,
    clean: true,
    target: "es2020",
    outExtension: ({ format }) => ({ js: format === "esm" ? ".mjs" : ".cjs" }),
  },
  // one file for a page without a bundler (the dashboard): socket.io-client inside
  {
    entry: { "tidings.browser": "src/index.ts" },
    format: ["esm"],
    platform: "browser",
    noExternal: ["socket.io-client"],
    minify: true,
    sourcemap: false,
    target: "es2020",
    outExtension: () => ({ js: ".mjs" }),
  },
]);
