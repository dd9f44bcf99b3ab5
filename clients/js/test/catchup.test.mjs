// Catch-ups against a real Tidings server: a subscribe that races a reconnect, a big group missed
// while disconnected, a lost live event below the highest id handed over, and tokens on a device
// whose clock is off.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { Tidings } from "../dist/index.mjs";
import { API_KEY, Server, add, collector, marker, startStore, timeOf, token, uid, waitFor } from "./support.mjs";

let store;
let server;
const cleanups = [];

before(async () => {
  store = await startStore();
  server = await new Server({ storeUrl: store.url }).start();
});

after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await server?.stop();
  await store?.stop();
});

function client(options) {
  const c = new Tidings({ url: server.url, apiKey: API_KEY, transports: ["websocket"], reconnectionDelay: 100, reconnectionDelayMax: 500, ...options });
  cleanups.push(() => c.close());
  return c;
}

const post = (feed, n) => add(server.url, feed, { actor: "poster", verb: "post", object: `o:${n}`, time: timeOf(Date.now() - 60_000, n) });

/** States seen so far, and a wait for the n-th "connected". */
function watchStates(c) {
  const states = [];
  c.on("state", (s) => states.push(s));
  return { states, connects: () => states.filter((s) => s === "connected").length };
}

test("a subscribe whose ack is lost to a reconnect gets live events on the new connection", async () => {
  const user = uid();
  const feed = `user:${user}`;
  const bob = client({ token: token({ user_id: user }) });
  const { connects } = watchStates(bob);
  const seen = collector();
  const pending = bob.feed(feed).subscribe(seen.onActivity);
  let dropped = false;
  bob.socket.onAnyOutgoing((event) => {
    if (event === "subscribe" && !dropped) {
      dropped = true;
      bob.socket.io.engine.close(); // the transport drops with the subscribe on its way: no ack
    }
  });
  await pending;
  assert.ok(dropped, "the subscribe never went out");
  await waitFor(() => connects() === 2, "the reconnect");
  const { id } = await post(feed, 1);
  await waitFor(() => seen.ids().includes(id), "the activity, live, after the reconnect", 5000);
  seen.assertExactlyOnceInOrder([id], assert);
});

test("a reconnect during a subscribe's first catch-up: subscribed again, live events come", async () => {
  const user = uid();
  const feed = `user:${user}`;
  let release;
  const held = new Promise((resolve) => (release = resolve));
  let reading = false;
  // The first catch-up's REST read (the feed's newest id) waits until the socket reconnected.
  const fetcher = async (url, init) => {
    if (!reading && String(url).includes("limit=1")) {
      reading = true;
      await held;
    }
    return fetch(url, init);
  };
  const bob = client({ token: token({ user_id: user }), fetch: fetcher });
  const { connects } = watchStates(bob);
  const seen = collector();
  const pending = bob.feed(feed).subscribe(seen.onActivity);
  await waitFor(() => reading, "the first catch-up's read");
  bob.socket.io.engine.close();
  await waitFor(() => connects() === 2, "the reconnect");
  release();
  await pending;
  const { id } = await post(feed, 1);
  await waitFor(() => seen.ids().includes(id), "the activity, live, after the reconnect", 5000);
  seen.assertExactlyOnceInOrder([id], assert);
});

test("150 same-verb notifications missed while disconnected: each delivered once, oldest first", async () => {
  const user = uid();
  const feed = `notification:${user}`;
  const bob = client({ token: token({ user_id: user }) });
  const recoveries = [];
  bob.on("recovered", (r) => recoveries.push(r));
  const seen = collector();
  await bob.feed(feed).subscribe(seen.onActivity);
  bob.socket.disconnect(); // held disconnected (socket.io does not reconnect after this by itself)
  await waitFor(() => bob.state === "disconnected", "the disconnect");
  const base = Date.now() - 60_000;
  const like = (n) => ({ actor: `fan${n}`, verb: "like", object: "photo:1", foreign_id: `like:${n}`, time: timeOf(base, n) });
  const stored = [];
  for (const [from, to] of [[0, 100], [100, 150]]) {
    const body = await add(server.url, feed, { activities: Array.from({ length: to - from }, (_, j) => like(from + j)) });
    stored.push(...body.activities.map((a) => a.id));
  }
  bob.socket.connect();
  await waitFor(() => recoveries.some((r) => r.reason === "connect"), "the catch-up");
  seen.assertExactlyOnceInOrder(stored, assert);
  const caughtUp = recoveries.find((r) => r.reason === "connect");
  assert.equal(caughtUp.delivered, 150);
  assert.ok(caughtUp.pages >= 1, "the ack said `more`: the rest comes in further pages");
});

test("a live event lost below the highest id handed over is fetched by the next catch-up", async () => {
  const user = uid();
  const feed = `user:${user}`;
  const bob = client({ token: token({ user_id: user }) });
  const recoveries = [];
  bob.on("recovered", (r) => recoveries.push(r));
  const seen = collector();
  await bob.feed(feed).subscribe(seen.onActivity);
  const base = Date.now() - 60_000;
  const activity = (n) => ({ actor: user, verb: "post", object: `o:${n}`, foreign_id: `o:${n}`, time: timeOf(base, n) });
  const higher = (await add(server.url, feed, activity(2))).id;
  await waitFor(() => seen.ids().includes(higher), "the higher one, live");
  bob.socket.disconnect();
  await waitFor(() => bob.state === "disconnected", "the disconnect");
  // Stored below the highest id handed over, its live event lost: as a fanout job that finished
  // late, or a backdated activity.
  const lower = (await add(server.url, feed, activity(1))).id;
  assert.ok(lower < higher);
  bob.socket.connect();
  await waitFor(() => recoveries.some((r) => r.reason === "connect"), "the catch-up");
  const last = await marker(server.url, feed, seen, timeOf(base, 3));
  seen.assertExactlyOnce([higher, lower, last], assert);
});

test("a device clock an hour fast: tokens are refreshed a bounded number of times", async () => {
  const user = uid();
  const feed = `user:${user}`;
  const fast = () => Date.now() + 3_600_000; // every token looks expired on arrival
  const calls = { iat: [], date: [], blind: [] };
  const getToken = (kind, iat) => () => {
    calls[kind].push(Date.now());
    return token({ user_id: user }, 60, iat ? Math.floor(Date.now() / 1000) : undefined);
  };
  // A response without its Date header (a browser does not show it to another origin).
  const noDate = async (url, init) => {
    const response = await fetch(url, init);
    const headers = [...response.headers].filter(([name]) => name !== "date");
    return new Response(response.body, { status: response.status, headers });
  };
  const clients = {
    iat: client({ now: fast, getToken: getToken("iat", true) }), // the server's clock: exp - iat
    date: client({ now: fast, getToken: getToken("date", false) }), // the server's clock: Date
    blind: client({ now: fast, getToken: getToken("blind", false), fetch: noDate }), // neither
  };
  const seen = {};
  for (const [kind, c] of Object.entries(clients)) {
    seen[kind] = collector();
    await c.feed(feed).subscribe(seen[kind].onActivity);
  }
  // Nothing tells the blind one how long its tokens live: it asks again after a floor that
  // doubles (1 s, then 2 s), never in a loop.
  await waitFor(() => calls.blind.length >= 3, "the blind client's third token", 10_000);
  const [first, second, third] = calls.blind;
  assert.ok(second - first >= 900 && third - second >= 1900, `asked at ${calls.blind.map((t) => t - first)} ms`);
  assert.equal(calls.iat.length, 1, `with iat: ${calls.iat.length} tokens`);
  assert.ok(calls.date.length <= 2, `with Date: ${calls.date.length} tokens`);
  const { id } = await post(feed, 1);
  for (const kind of Object.keys(clients)) {
    await waitFor(() => seen[kind].ids().includes(id), `the activity, live, on the ${kind} client`);
    assert.equal(clients[kind].state, "connected");
  }
  assert.equal(calls.blind.length, 3);
});
