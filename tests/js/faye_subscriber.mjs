// A Faye subscriber driven by the Python tests: Stream's SDK (`feed.subscribe`) or the npm
// `faye` client with the auth extension stream-js installs, pointed at Tidings' /faye.
//
//   node tests/js/faye_subscriber.mjs '{"url": URL, "key": KEY, "appId": ID, "token": JWT,
//     "feeds": [[SLUG, USER_ID, FEED_TOKEN?], ...], "client": "sdk" | "faye",
//     "disable": ["websocket"]}'
//
// "token" is the client's user token (the SDK's feeds use it unless a feed token is given).
// Prints one JSON line to stdout per thing that happens:
//   {"type":"subscribed","channel":CHANNEL}
//   {"type":"refused","channel":CHANNEL,"code":BAYEUX_CODE,"error":TEXT}
//   {"type":"message","channel":CHANNEL,"data":DATA}
//   {"type":"transport","state":"up"|"down"}
// and exits when stdin closes or on SIGTERM.
import Faye from "faye";
import { connect } from "getstream";

const options = JSON.parse(process.argv[2]);
const fayeUrl = `${options.url}/faye`;

function emitLine(record) {
  process.stdout.write(JSON.stringify(record) + "\n");
}

function rawSubscriptions() {
  // What stream-js does, by hand: the channel of each feed, and its token in `ext`.
  const client = new Faye.Client(fayeUrl, { timeout: 10 });
  const tokens = {};
  client.addExtension({
    outgoing(message, callback) {
      if (message.subscription && tokens[message.subscription]) {
        message.ext = {
          user_id: message.subscription.slice(1),
          api_key: options.key,
          signature: tokens[message.subscription],
        };
      }
      callback(message);
    },
  });
  const subscriptions = options.feeds.map(([slug, userId, feedToken]) => {
    const channel = `/site-${options.appId}-feed-${slug}${userId}`;
    tokens[channel] = feedToken ?? options.token;
    return [channel, (callback) => client.subscribe(channel, callback)];
  });
  return { faye: client, subscriptions };
}

function sdkSubscriptions() {
  const client = connect(options.key, options.token, options.appId, {
    fayeUrl,
    urlOverride: { api: `${options.url}/api/` },
  });
  const subscriptions = options.feeds.map(([slug, userId, feedToken]) => {
    const feed = client.feed(slug, userId, feedToken);
    return [`/${feed.notificationChannel}`, (callback) => feed.subscribe(callback)];
  });
  return { faye: client.getFayeClient(), subscriptions };
}

const { faye, subscriptions } = options.client === "faye" ? rawSubscriptions() : sdkSubscriptions();
for (const transport of options.disable ?? []) faye.disable(transport);
faye.on("transport:up", () => emitLine({ type: "transport", state: "up" }));
faye.on("transport:down", () => emitLine({ type: "transport", state: "down" }));

for (const [channel, subscribe] of subscriptions) {
  subscribe((data) => emitLine({ type: "message", channel, data })).then(
    () => emitLine({ type: "subscribed", channel }),
    (error) => emitLine({ type: "refused", channel, code: error?.code ?? null,
                          error: String(error?.message ?? error) }),
  );
}

let closing = false;
function shutdown() {
  if (closing) return;
  closing = true;
  faye.disconnect();
  process.stdout.write("", () => process.exit(0));
}

process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
process.stdin.on("end", shutdown);
process.stdin.on("close", shutdown);
process.stdin.resume();
