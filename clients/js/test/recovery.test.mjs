// The SDK against real Tidings servers: a restart mid-stream, a Redis outage on two nodes,
// paging `more` with further subscribes, token refresh. Every activity handed over once, oldest first.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { MemoryStorage, Tidings } from "../dist/index.mjs";
import {
  API_KEY, Redis, SERVER_TOKEN, Server, add, addThroughRestart, collector, marker, sleep, startStore,
  timeOf, token, uid, waitFor,
} from "./support.mjs";

let store;
const cleanups = [];
const report = {};

before(async () => {
  store = await startStore();
});

after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await store?.stop();
  console.log(`SDK measurements: ${JSON.stringify(report)}`);
});

function client(url, options) {
  const c = new Tidings({ url, apiKey: API_KEY, transports: ["websocket"], reconnectionDelay: 200, reconnectionDelayMax: 1000, ...options });
  cleanups.push(() => c.close());
  return c;
}

test("a server restart mid-stream: nothing lost, nothing twice, oldest first", async () => {
  const server = await new Server({ storeUrl: store.url }).start();
  cleanups.push(() => server.stop());
  const user = uid();
  const feed = `user:${user}`;
  const bob = client(server.url, { token: token({ user_id: user }) });
  const states = [];
  const recoveries = [];
  bob.on("state", (s) => states.push(s));
  bob.on("recovered", (r) => recoveries.push(r));
  const seen = collector();
  await bob.feed(feed).subscribe(seen.onActivity);
  const base = Date.now() - 60_000;
  const stored = [];
  const N = 40;
  for (let i = 0; i < N; i++) {
    if (i === 15) await server.killAndRestart(); // kill -9 mid-stream; same port, same database
    const activity = { actor: user, verb: "tick", object: `tick:${i}`, foreign_id: `tick:${i}`, time: timeOf(base, i) };
    stored.push((await addThroughRestart(server, feed, activity)).id);
  }
  await server.up;
  await waitFor(() => seen.got.length >= N, `${N} activities (got ${seen.got.length})`);
  stored.push(await marker(server.url, feed, seen, timeOf(base, N))); // anything twice came before it
  seen.assertExactlyOnceInOrder(stored, assert);
  assert.ok(states.includes("disconnected"), `the socket never dropped: ${states}`);
  const afterRestart = recoveries.filter((r) => r.reason === "connect");
  assert.ok(afterRestart.length >= 1, "no catch-up after the restart");
  report.restart_recovery_ms = afterRestart.map((r) => r.ms); // from the drop to caught up
  report.restart_caught_up = afterRestart.map((r) => r.delivered);
});

test("resync after a Redis outage on two nodes", async () => {
  const redis = await new Redis().start();
  cleanups.push(() => redis.stop());
  const database = `js_resync_${uid()}`;
  const a = await new Server({ storeUrl: store.url, database, redisUrl: redis.url }).start();
  const b = await new Server({ storeUrl: store.url, database, redisUrl: redis.url }).start();
  cleanups.push(() => a.stop(), () => b.stop());
  const user = uid();
  const feed = `user:${user}`;
  const bob = client(b.url, { token: token({ user_id: user }) }); // on node B
  const resyncs = [];
  const recoveries = [];
  bob.on("resync", (r) => resyncs.push(r));
  bob.on("recovered", (r) => recoveries.push(r));
  const seen = collector();
  await bob.feed(feed).subscribe(seen.onActivity);
  const base = Date.now() - 60_000;
  const stored = [];
  const tick = async (i) => {
    const activity = { actor: user, verb: "tick", object: `t:${i}`, foreign_id: `t:${i}`, time: timeOf(base, i) };
    stored.push((await add(a.url, feed, activity)).id); // posted on node A
  };
  await tick(0);
  await waitFor(() => seen.got.length === 1, "the live event across nodes");
  await redis.stop(); // node A cannot tell node B about the next ones
  await waitFor(async () => (await (await fetch(a.url + "/readyz")).json()).redis === "down", "A sees Redis down");
  for (let i = 1; i <= 5; i++) await tick(i);
  await redis.start(); // same port: both nodes link again and tell their sockets to resync
  await waitFor(() => seen.got.length >= 6, `6 activities after the resync (got ${seen.got.length})`, 30_000);
  stored.push(await marker(a.url, feed, seen, timeOf(base, 6)));
  seen.assertExactlyOnceInOrder(stored, assert);
  assert.ok(resyncs.length >= 1, "no resync event");
  report.resync_recovery_ms = recoveries.filter((r) => r.reason === "resync").map((r) => r.ms);
});

test("live events during catch-ups (the socket dropped over and over while posting)", async () => {
  const server = await new Server({ storeUrl: store.url }).start();
  cleanups.push(() => server.stop());
  const user = uid();
  const feed = `timeline:${user}`;
  const follow = await fetch(`${server.url}/api/v1.0/feed/timeline/${user}/follows/?api_key=${API_KEY}`, {
    method: "POST", body: JSON.stringify({ target: `user:${user}` }),
    headers: { Authorization: SERVER_TOKEN, "Content-Type": "application/json", "stream-auth-type": "jwt" },
  });
  assert.equal(follow.status, 201);
  const bob = client(server.url, { token: token({ user_id: user }), reconnectionDelay: 20, reconnectionDelayMax: 50 });
  const recoveries = [];
  bob.on("recovered", (r) => recoveries.push(r));
  const seen = collector();
  await bob.feed(feed).subscribe(seen.onActivity);
  const base = Date.now() - 60_000;
  const stored = [];
  let posting = true;
  let drops = 0;
  const dropper = (async () => {
    while (posting) {
      await sleep(40);
      if (bob.socket?.connected) drops += 1; // a connected socket dropped (not a reconnecting one)
      bob.socket?.io.engine?.close(); // the transport drops: socket.io reconnects by itself
    }
  })();
  const N = 120;
  for (let i = 0; i < N; i += 4) {
    const batch = [0, 1, 2, 3].map((j) => ({ actor: user, verb: "tick", object: `t:${i + j}`,
      foreign_id: `t:${i + j}`, time: timeOf(base, i + j) }));
    const body = await add(server.url, `user:${user}`, { activities: batch });
    stored.push(...body.activities.map((x) => x.id));
  }
  posting = false;
  await dropper;
  await waitFor(() => seen.got.length >= N, `${N} activities (got ${seen.got.length})`, 30_000);
  stored.push(await marker(server.url, `user:${user}`, seen, timeOf(base, N)));
  // Each batch of 4 is 4 fanout jobs to the timeline, which finish (and emit) in any order: live
  // events are handed over as they come, catch-ups oldest first.
  seen.assertExactlyOnce(stored, assert);
  assert.ok(drops >= 3, `the socket hardly dropped (${drops} times while connected)`);
  assert.ok(recoveries.some((r) => r.reason === "connect"), "no catch-up after a reconnect");
});

test("more than 100 missed: the rest paged with further subscribes; the last id kept in storage", async () => {
  const server = await new Server({ storeUrl: store.url }).start();
  cleanups.push(() => server.stop());
  const user = uid();
  const feed = `user:${user}`;
  const base = Date.now() - 60_000;
  const batch = (from) => Array.from({ length: 100 }, (_, j) => ({
    actor: user, verb: "tick", object: `t:${from + j}`, foreign_id: `t:${from + j}`, time: timeOf(base, from + j),
  }));
  const ids = [];
  for (const from of [0, 100, 200]) {
    const body = await add(server.url, feed, { activities: batch(from) });
    ids.push(...body.activities.map((x) => x.id));
  }
  ids.sort();
  const storage = new MemoryStorage();
  storage.setItem(`tidings:${feed}`, ids[9]); // as an app that saw the first 10 before it quit
  const bob = client(server.url, { token: token({ user_id: user }), storage });
  const recoveries = [];
  bob.on("recovered", (r) => recoveries.push(r));
  const seen = collector();
  const subscription = await bob.feed(feed).subscribe(seen.onActivity);
  seen.assertExactlyOnceInOrder(ids.slice(10), assert); // all there when subscribe resolves
  assert.equal(recoveries[0].pages, 2, "290 missed: 100 in the ack, then two more pages");
  assert.equal(subscription.lastId, ids[ids.length - 1]);
  assert.equal(storage.getItem(`tidings:${feed}`), ids[ids.length - 1]);
  report.paged_290_ms = recoveries[0].ms;
});

test("tokens: getToken before exp, and on token.expired; the socket stays up", async () => {
  const server = await new Server({ storeUrl: store.url, env: { TIDINGS_REALTIME_TOKEN_GRACE_SECONDS: "5" } }).start();
  cleanups.push(() => server.stop());
  const user = uid();
  const feed = `user:${user}`;
  let calls = 0;
  // The first scheduled refresh fails (the app's backend is away): the server's token.expired
  // must then make the SDK ask again.
  const getToken = async () => {
    calls += 1;
    if (calls === 1) throw new Error("backend away");
    return token({ user_id: user }, 3);
  };
  const bob = client(server.url, { token: token({ user_id: user }, 2), getToken });
  const states = [];
  const errors = [];
  bob.on("state", (s) => states.push(s));
  bob.on("error", (e) => errors.push(e));
  const seen = collector();
  await bob.feed(feed).subscribe(seen.onActivity);
  await waitFor(() => calls >= 2, "getToken asked again after token.expired", 10_000);
  await waitFor(() => calls >= 3, "getToken asked before the next exp", 10_000);
  const stored = [];
  for (let i = 0; i < 3; i++) {
    stored.push((await add(server.url, feed, { actor: user, verb: "tick", object: `t:${i}` })).id);
  }
  await waitFor(() => seen.got.length === 3, "live activities with the refreshed token");
  seen.assertExactlyOnceInOrder(stored, assert);
  assert.deepEqual(states, ["connecting", "connected"], "the socket dropped");
  assert.equal(errors.length, 1, `errors: ${errors}`); // the failed getToken, reported
  // REST with the refreshed token works too
  const page = await bob.feed(feed).get({ limit: 3 });
  assert.equal(page.results.length, 3);
});

test("a refused subscribe rejects; presence and publish over the socket", async () => {
  const server = await new Server({ storeUrl: store.url }).start();
  cleanups.push(() => server.stop());
  const user = uid();
  const bob = client(server.url, { token: token({ user_id: user }) });
  await assert.rejects(bob.feed(`user:someone_else_${user}`).subscribe(() => {}), (e) => e.exception === "NotAllowedException");
  const stranger = client(server.url, { token: token({ user_id: user }, -10) }); // expired, no getToken
  stranger.on("error", () => {});
  await assert.rejects(stranger.feed(`user:${user}`).subscribe(() => {}), (e) => e.exception === "SignatureException");
  const room = `raid:${user}`;
  const member = client(server.url, { token: token({ resource: "*", action: "*", feed_id: `raid${user}`, user_id: user }) });
  const joins = [];
  member.on("presence", (e) => joins.push(e));
  const seen = collector();
  await member.feed(room).subscribe(seen.onActivity, { presence: { info: { class: "tank" } } });
  const page = await member.presence(room);
  assert.equal(page.count, 1);
  assert.deepEqual(page.members[0].info, { class: "tank" });
  const published = await member.publish(room, { actor: user, verb: "call", object: "pull:1" });
  await waitFor(() => seen.got.length === 1, "the published activity, live");
  assert.equal(seen.got[0].id, published.id);
  await waitFor(() => joins.some((e) => e.type === "join" && e.user_id === user), "presence.join");
});
