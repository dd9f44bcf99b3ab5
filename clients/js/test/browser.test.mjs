// The built ESM bundle in headless Chromium: a page served by this test (another origin than
// Tidings: REST through fetch with CORS, the socket through socket.io-client's ESM build).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { launch } from "./browser.mjs";
import { API_KEY, ROOT, Server, add, startStore, token, uid, waitFor } from "./support.mjs";

const JS = join(ROOT, "clients", "js");
const FILES = {
  "/dist/index.mjs": join(JS, "dist", "index.mjs"),
  "/vendor/socket.io-client.mjs": join(JS, "node_modules", "socket.io-client", "dist", "socket.io.esm.min.js"),
};
const PAGE = `<!doctype html><html><head><meta charset="utf-8">
<script type="importmap">{"imports": {"socket.io-client": "/vendor/socket.io-client.mjs"}}</script>
</head><body><ul id="got"></ul><script type="module">
import { Tidings, localStorageAdapter } from "/dist/index.mjs";
window.start = async ({ url, apiKey, token, feed }) => {
  const client = new Tidings({ url, apiKey, token, storage: localStorageAdapter() });
  window.got = [];
  await client.feed(feed).subscribe((a) => {
    window.got.push(a.id);
    const li = document.createElement("li"); li.textContent = a.object; document.getElementById("got").append(li);
  });
  window.client = client;
  return client.state;
};
window.add = (feed, activity) => window.client.feed(feed).addActivity(activity);
</script></body></html>`;

let store, server, page_server, browser;

before(async () => {
  store = await startStore();
  server = await new Server({ storeUrl: store.url }).start();
  page_server = createServer((req, res) => {
    const path = new URL(req.url, "http://x").pathname;
    if (path === "/") return res.writeHead(200, { "Content-Type": "text/html" }).end(PAGE);
    const file = FILES[path];
    if (!file) return res.writeHead(404).end();
    res.writeHead(200, { "Content-Type": "text/javascript" }).end(readFileSync(file));
  });
  await new Promise((r) => page_server.listen(0, "127.0.0.1", r));
  browser = await launch();
});

after(async () => {
  await browser?.close();
  page_server?.close();
  await server?.stop();
  await store?.stop();
});

test("the ESM bundle in Chromium: subscribe, add over fetch, live events, localStorage", async () => {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(`http://127.0.0.1:${page_server.address().port}/`);
  const user = uid();
  const feed = `user:${user}`;
  const state = await page.evaluate((args) => window.start(args), { url: server.url, apiKey: API_KEY, token: token({ user_id: user }), feed });
  assert.equal(state, "connected");
  // from the page: REST through fetch (cross-origin), then the live event
  const added = await page.evaluate(([f, a]) => window.add(f, a), [feed, { actor: user, verb: "post", object: "from-the-browser" }]);
  // from outside
  const other = await add(server.url, feed, { actor: user, verb: "post", object: "from-node" });
  await waitFor(async () => (await page.evaluate(() => window.got.length)) === 2, "two live activities in the page");
  assert.deepEqual(await page.evaluate(() => window.got), [added.id, other.id].sort());
  assert.equal(await page.evaluate((f) => localStorage.getItem(`tidings:${f}`), feed), [added.id, other.id].sort()[1]);
  assert.match(await page.textContent("#got"), /from-the-browser/);
  assert.deepEqual(errors, []);
});
