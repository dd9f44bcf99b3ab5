// Copies the dashboard and the SDK's browser bundle into the Python package
// (server/tidings/dashboard_static), where Tidings serves them at /dashboard/. Run by
// `npm run build` in clients/js; the output is committed, so `make run` needs no npm.
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "..", "server", "tidings", "dashboard_static");
mkdirSync(out, { recursive: true });
for (const file of ["index.html", "dashboard.js", "dashboard.css"]) copyFileSync(join(here, file), join(out, file));
copyFileSync(join(here, "..", "js", "dist", "tidings.browser.mjs"), join(out, "tidings.browser.mjs"));
console.log(`dashboard: ${out}`);
