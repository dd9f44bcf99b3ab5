// The dashboard at /dashboard/ in headless Chromium: paste a server token, see the stats, watch
// a feed, post an activity, see it appear; the screenshot is looked at (not blank, the text
// there). TIDINGS_DASHBOARD_SCREENSHOT=docs/dashboard.png writes the README's picture.
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, test } from "node:test";

import { launch, pngVariety } from "./browser.mjs";
import { API_KEY, ROOT, Redis, SERVER_TOKEN, Server, add, startStore, token, uid, waitFor } from "./support.mjs";

let store, redis, a, b, browser;

before(async () => {
  store = await startStore();
  redis = await new Redis().start();
  const database = `js_dash_${uid()}`;
  a = await new Server({ storeUrl: store.url, database, redisUrl: redis.url }).start();
  b = await new Server({ storeUrl: store.url, database, redisUrl: redis.url }).start();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await a?.stop();
  await b?.stop();
  await redis?.stop();
  await store?.stop();
});

test("GET /admin/stats: a server token only", async () => {
  const url = `${a.url}/admin/stats`;
  assert.equal((await fetch(url)).status, 401);
  assert.equal((await fetch(url, { headers: { Authorization: token({ user_id: "bob" }) } })).status, 403);
  const ok = await fetch(url, { headers: { Authorization: SERVER_TOKEN } });
  assert.equal(ok.status, 200);
  const stats = await ok.json();
  assert.equal(stats.redis, "ok");
  assert.ok(stats.latency.buckets.includes("+Inf"));
  // the other node's report comes through Redis
  await waitFor(async () => {
    const body = await (await fetch(url, { headers: { Authorization: SERVER_TOKEN } })).json();
    return body.nodes.length === 2 && body.nodes.filter((n) => n.self).length === 1;
  }, "both nodes in the stats", 10_000);
});

test("the dashboard: stats, the latency histogram, a feed watched live, a screenshot", async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  const user = uid();
  const feed = `timeline:${user}`;
  await add(a.url, `user:${user}`, { actor: user, verb: "post", object: "warm-up" }); // a latency sample
  const follow = await fetch(`${a.url}/api/v1.0/feed/timeline/${user}/follows/?api_key=${API_KEY}`, {
    method: "POST", body: JSON.stringify({ target: `user:${user}` }),
    headers: { Authorization: SERVER_TOKEN, "Content-Type": "application/json", "stream-auth-type": "jwt" },
  });
  assert.equal(follow.status, 201);
  await page.goto(`${b.url}/dashboard/`);
  await page.fill("#token", SERVER_TOKEN);
  await page.click("#login button");
  await page.waitForFunction(() => document.querySelector("#redis").textContent === "ok");
  await page.fill("#feed", feed);
  await page.click("#watch button");
  await page.waitForFunction((f) => document.querySelector("#feed-status").textContent === `watching ${f}`, feed);
  const text = `raid starts in 5 min ${user}`;
  for (let i = 0; i < 4; i++) {
    await add(a.url, `user:${user}`, { actor: "alice", verb: "post", object: `photo:${i}` });
  }
  await add(a.url, `user:${user}`, { actor: "alice", verb: "announce", object: "raid:42", text });
  await page.waitForFunction((t) => document.querySelector("#activities").textContent.includes(t), text, { timeout: 15_000 });
  await page.waitForFunction(() => document.querySelector("#nodes tbody").children.length === 2); // both nodes
  await page.waitForFunction(() => document.querySelectorAll("#histogram rect").length > 5);
  await page.waitForFunction(() => /p50/.test(document.querySelector("#latency-summary").textContent), null, { timeout: 15_000 });
  await page.waitForFunction(() => document.querySelector("#sockets").textContent !== "0"); // its own socket
  assert.ok((await page.textContent("body")).includes(text));
  const png = await page.screenshot({ fullPage: true });
  const out = process.env.TIDINGS_DASHBOARD_SCREENSHOT
    ? resolve(ROOT, process.env.TIDINGS_DASHBOARD_SCREENSHOT)
    : join(mkdtempSync(join(tmpdir(), "tidings-dash-")), "dashboard.png");
  writeFileSync(out, png);
  const variety = pngVariety(png);
  assert.equal(variety.width, 1280);
  assert.ok(variety.colours > 20, `the screenshot looks blank: ${JSON.stringify(variety)}`);
  assert.deepEqual(errors, []);
});
