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
// "SU:<id>"). With "on": [NAME, ...ARGS] the call is made on `target[NAME](...ARGS)` (or on the
// property NAME when it is no method): `["user", ID]`, `["collections"]`, `"files"` (a NAME alone); a StreamUser or
// CollectionEntry it returns is printed as its `full` answer. A call that is a list of calls runs
// them concurrently (Promise.all). Prints one JSON array: per call {"ok": true, "result": ...}
// or {"ok": false, "status": N, "error": BODY}.
// {"$buffer": BASE64} in "args" stands for a Buffer of those bytes (an upload's content).
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
    if ("$buffer" in arg) return Buffer.from(arg.$buffer, "base64");
    return Object.fromEntries(Object.entries(arg).map(([k, v]) => [k, revive(v)]));
  }
  return arg;
}

function plain(result) {
  const wrapped = result && typeof result === "object" && ("client" in result || "store" in result);
  return wrapped ? result.full : result;
}

async function run(call) {
  if (Array.isArray(call)) return Promise.all(call.map(run));
  const client = clientOf(call.user);
  let target = call.feed ? client.feed(...call.feed) : call.of ? client[call.of] : client;
  try {
    if (call.on) {
      const [name, ...args] = Array.isArray(call.on) ? call.on : [call.on];
      target = typeof target[name] === "function" ? target[name](...args) : target[name];
    }
    return { ok: true, result: plain(await target[call.method](...revive(call.args ?? []))) };
  } catch (err) {
    return { ok: false, status: err.response?.status ?? null, error: err.error ?? String(err) };
  }
}

const results = [];
for (const call of options.calls) results.push(await run(call));
// exit once written: a socket an upload left in the keep-alive pool would hold the process
process.stdout.write(JSON.stringify(results) + "\n", () => process.exit(0));
