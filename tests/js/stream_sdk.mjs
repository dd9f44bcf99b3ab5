// Stream's npm SDK (`getstream`), driven by the Python tests against a Tidings server.
//
//   node tests/js/stream_sdk.mjs '{"url": URL, "key": KEY, "secret": SECRET, "calls": [...]}'
//
// Each call is {"user": ID | null, "feed": [SLUG] | [SLUG, USER_ID] | null, "method": NAME,
// "args": [...]}: made with a client holding that user's token (made with the secret, as Stream's
// own tests do: a browser app holds one), or with the server-side client when `user` is null; on
// `client.feed(...)` when `feed` is given (a slug alone names the user's own feed), on
// `client[of]` when `of` is given (`"reactions"`: `client.reactions.add(...)`), else on the
// client. In "args", {"$user": ID} stands for that user's `currentUser` (the SDK sends it as
// "SU:<id>"). A call that is a list of calls runs them concurrently (Promise.all). Prints one JSON
// array: per call {"ok": true, "result": ...} or {"ok": false, "status": N, "error": BODY}.
import { connect } from "getstream";

const options = JSON.parse(process.argv[2]);
const clientOptions = { urlOverride: { api: `${options.url}/api/` }, timeout: 10000 };
const server = connect(options.key, options.secret, undefined, clientOptions);
const users = new Map();

function clientOf(user) {
  if (user == null) return server;
  if (!users.has(user)) {
    users.set(user, connect(options.key, server.createUserToken(user), undefined, clientOptions));
  }
  return users.get(user);
}

function revive(arg) {
  if (Array.isArray(arg)) return arg.map(revive);
  if (arg && typeof arg === "object") {
    if ("$user" in arg) return clientOf(arg.$user).currentUser;
    return Object.fromEntries(Object.entries(arg).map(([k, v]) => [k, revive(v)]));
  }
  return arg;
}

async function run(call) {
  if (Array.isArray(call)) return Promise.all(call.map(run));
  const client = clientOf(call.user);
  const target = call.feed ? client.feed(...call.feed) : call.of ? client[call.of] : client;
  try {
    return { ok: true, result: await target[call.method](...revive(call.args ?? [])) };
  } catch (err) {
    return { ok: false, status: err.response?.status ?? null, error: err.error ?? String(err) };
  }
}

const results = [];
for (const call of options.calls) results.push(await run(call));
process.stdout.write(JSON.stringify(results) + "\n");
