// Copies the SDK's browser bundle (clients/js/dist/tidings.browser.mjs, socket.io-client inside)
// into the dashboard's page (clients/dashboard/public), which Tidings serves at /dashboard/ as it
// is: from here in a checkout, from inside the package in a wheel (pyproject.toml puts it there).
// Run by `npm run build` in clients/js. The copy is committed, so `make run` and `pip install .`
// need no npm; commit it again whenever the SDK's source changes.
import { copyFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "public", "tidings.browser.mjs");
copyFileSync(join(here, "..", "js", "dist", "tidings.browser.mjs"), out);
console.log(`dashboard: ${out}`);
