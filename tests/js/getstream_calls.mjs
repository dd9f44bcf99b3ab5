// Stream's npm SDK (getstream) making calls that the Python tests script, one client per user.
//
//   node tests/js/getstream_calls.mjs '{"url": URL, "key": API_KEY,
//       "tokens": {"alice": TOKEN, ...},
//       "calls": [{"as": "alice", "feed": ["user"] | ["timeline", "bob"],
//                  "method": "addActivity", "args": [...]}, ...]}'
//
// Each client is connected as a browser app is, with its user token. In "args", {"$user": NAME}
// stands for that client's `currentUser` (the SDK sends it as "SU:<id>"). Calls run in order;
// stdout, one JSON line per call: {"ok": true, "result": ...} or
// {"ok": false, "status": HTTP_STATUS, "error": BODY}.
import stream from "getstream";

const options = JSON.parse(process.argv[2]);
const clients = Object.fromEntries(
  Object.entries(options.tokens).map(([name, token]) => [
    name,
    stream.connect(options.key, token, undefined, { urlOverride: { api: `${options.url}/api/` } }),
  ]),
);
const revive = (arg) => {
  if (Array.isArray(arg)) return arg.map(revive);
  if (arg && typeof arg === "object") {
    if ("$user" in arg) return clients[arg.$user].currentUser;
    return Object.fromEntries(Object.entries(arg).map(([k, v]) => [k, revive(v)]));
  }
  return arg;
};
const out = (record) => process.stdout.write(JSON.stringify(record) + "\n");

for (const call of options.calls) {
  const feed = clients[call.as].feed(...call.feed);
  try {
    out({ ok: true, result: await feed[call.method](...revive(call.args ?? [])) });
  } catch (err) {
    out({ ok: false, status: err.response?.status ?? null, error: err.error ?? String(err) });
  }
}
