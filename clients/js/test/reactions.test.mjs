// watchReactions against real Tidings servers: live reaction events, and, after a restart of
// the node the client is on, the changes it could not hear handed over by the re-watch (`since`).
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { Tidings } from "../dist/index.mjs";
import { API_KEY, SERVER_TOKEN, Server, add, startStore, token, uid, waitFor } from "./support.mjs";

let store;
const cleanups = [];

before(async () => {
  store = await startStore();
});

after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await store?.stop();
});

async function rest(url, method, path, body) {
  const response = await fetch(`${url}/api/v1.0/${path}?api_key=${API_KEY}`, {
    method,
    headers: { Authorization: SERVER_TOKEN, "Content-Type": "application/json", "stream-auth-type": "jwt" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  assert.ok(response.status < 300, `${method} ${path}: ${response.status} ${await response.clone().text()}`);
  return response.json();
}

test("reactions live, and what a restart hid handed over once by the re-watch", async () => {
  // Two nodes on one database and no Redis: what is written on B never reaches A's sockets live.
  const database = `js_reactions_${uid()}`;
  const a = await new Server({ storeUrl: store.url, database }).start();
  const b = await new Server({ storeUrl: store.url, database }).start();
  cleanups.push(() => a.stop(), () => b.stop());
  const user = uid();
  const activity = await add(a.url, `user:${user}`, { actor: user, verb: "post", object: "o:1" });
  const client = new Tidings({ url: a.url, apiKey: API_KEY, token: token({ user_id: user }), transports: ["websocket"], reconnectionDelay: 200, reconnectionDelayMax: 1000 });
  cleanups.push(() => client.close());
  const got = [];
  const watch = await client.watchReactions(activity.id, (event) => got.push(event));
  const body = { kind: "like", activity_id: activity.id, user_id: user };
  const first = await rest(a.url, "POST", "reaction/", body);
  await waitFor(() => got.length === 1, "the live add");
  assert.equal(got[0].type, "reaction.added");
  assert.equal(got[0].reaction.id, first.id);
  assert.deepEqual(got[0].reaction_counts, { like: 1 });

  const hidden = await rest(b.url, "POST", "reaction/", { ...body, kind: "comment" });
  await rest(b.url, "PUT", `reaction/${first.id}/`, { data: { n: 1 } });
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(got.length, 1, "B's writes are not live on A");
  await a.killAndRestart();
  await a.up;
  await waitFor(() => got.length === 3, `the two hidden changes (got ${got.length})`);
  assert.deepEqual(got.slice(1).map((e) => [e.type, e.reaction.id]), [["reaction.updated", first.id], ["reaction.added", hidden.id]]);
  assert.deepEqual(got[2].reaction_counts, { like: 1, comment: 1 });
  assert.ok(watch.lastId >= hidden.id, "since moves past what it handed over (to the re-watch's cursor)");

  await rest(a.url, "DELETE", `reaction/${hidden.id}/`);
  await waitFor(() => got.length === 4, "the live delete");
  assert.equal(got[3].type, "reaction.deleted");
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(got.length, 4, "each change once");
});
