// Bundles src/main.jsx (React, react-activity-feed and its CSS) into dist/ with esbuild, and
// copies index.html beside it: dist/ is the whole static site, to serve from any web server.
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "dist");
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [join(here, "src", "main.jsx")],
  outfile: join(out, "app.js"), // and app.css, from the imported stylesheet
  bundle: true,
  minify: true,
  format: "iife",
  platform: "browser",
  target: "es2019",
  jsx: "automatic",
  loader: { ".png": "dataurl", ".svg": "dataurl", ".woff": "file", ".woff2": "file", ".ttf": "file", ".eot": "file" },
  define: { "process.env.NODE_ENV": '"production"', global: "window" },
  logLevel: "warning",
});
copyFileSync(join(here, "index.html"), join(out, "index.html"));
console.log(`react-activity-feed example: ${out}`);
