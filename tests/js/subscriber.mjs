// A Socket.IO subscriber driven by the Python tests, with the official socket.io-client.
//
//   node tests/js/subscriber.mjs URL TOKEN FEED [FEED...]
//   node tests/js/subscriber.mjs '{"url": URL, "token": TOKEN, "feeds": [...], "since": ID}'
//
// Prints one JSON line to stdout per thing that happens:
//   {"type":"connected"}
//   {"type":"subscribed","feed":FEED,"ack":ACK}
//   {"type":"event","name":"feed.update","data":DATA}
//   {"type":"connect_error","message":MSG,"data":DATA}
//   {"type":"disconnected","reason":REASON}
// and exits when stdin closes or on SIGTERM.
import { io } from "socket.io-client";

function parseArgs(argv) {
  if (argv.length === 1 && argv[0].trim().startsWith("{")) {
    const options = JSON.parse(argv[0]);
    return { url: options.url, token: options.token, feeds: options.feeds ?? [], since: options.since };
  }
  if (argv.length < 2) {
    process.stderr.write("usage: subscriber.mjs URL TOKEN FEED... | subscriber.mjs JSON\n");
    process.exit(2);
  }
  const [url, token, ...feeds] = argv;
  return { url, token, feeds, since: undefined };
}

function emitLine(record) {
  process.stdout.write(JSON.stringify(record) + "\n");
}

const { url, token, feeds, since } = parseArgs(process.argv.slice(2));
const auth = token ? { token } : {};
const socket = io(url, { auth, transports: ["websocket"], reconnection: false, timeout: 10000 });

socket.on("connect", () => {
  emitLine({ type: "connected" });
  for (const feed of feeds) {
    const payload = since ? { feed, since } : { feed };
    socket.timeout(10000).emit("subscribe", payload, (err, ack) => {
      if (err) {
        emitLine({ type: "subscribe_timeout", feed, message: String(err.message ?? err) });
      } else {
        emitLine({ type: "subscribed", feed, ack });
      }
    });
  }
});

socket.on("feed.update", (data) => {
  emitLine({ type: "event", name: "feed.update", data });
});

socket.on("connect_error", (err) => {
  emitLine({ type: "connect_error", message: err.message, data: err.data ?? null });
});

socket.on("disconnect", (reason) => {
  emitLine({ type: "disconnected", reason });
});

let closing = false;
function shutdown() {
  if (closing) return;
  closing = true;
  socket.close();
  // Let stdout drain before leaving.
  process.stdout.write("", () => process.exit(0));
}

process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
process.stdin.on("end", shutdown);
process.stdin.on("close", shutdown);
process.stdin.resume();
