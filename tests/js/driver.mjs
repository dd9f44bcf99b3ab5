// A Socket.IO client driven line by line by the Python tests, with the official socket.io-client.
//
//   node tests/js/driver.mjs '{"url": URL, "namespace": "/", "token": TOKEN,
//                              "transports": ["websocket"]}'
//
// stdin, one JSON command per line:
//   {"id": N, "emit": EVENT, "args": [...]}   emit with an ack; an argument {"$buffer": "text"}
//                                            is sent as binary (a Buffer)
// stdout, one JSON line per thing that happens:
//   {"type":"connected"}   {"type":"connect_error","message":MSG,"data":DATA}
//   {"type":"ack","id":N,"args":[...]}   {"type":"ack_timeout","id":N}
//   {"type":"event","name":NAME,"args":[...]}   {"type":"disconnected","reason":REASON}
// and exits when stdin closes.
import { createInterface } from "node:readline";
import { io } from "socket.io-client";

const options = JSON.parse(process.argv[2]);
const out = (record) => process.stdout.write(JSON.stringify(record) + "\n");
const url = options.url + (options.namespace && options.namespace !== "/" ? options.namespace : "");
const socket = io(url, {
  auth: options.token ? { token: options.token } : {},
  transports: options.transports ?? ["websocket"],
  reconnection: false,
  timeout: 10000,
});

const revive = (arg) => (arg && typeof arg === "object" && "$buffer" in arg ? Buffer.from(arg.$buffer) : arg);

socket.on("connect", () => out({ type: "connected" }));
socket.on("connect_error", (err) => out({ type: "connect_error", message: err.message, data: err.data ?? null }));
socket.on("disconnect", (reason) => out({ type: "disconnected", reason }));
socket.onAny((name, ...args) => out({ type: "event", name, args }));

createInterface({ input: process.stdin }).on("line", (line) => {
  const command = JSON.parse(line);
  const args = (command.args ?? []).map(revive);
  socket.timeout(command.timeout ?? 10000).emit(command.emit, ...args, (err, ...answer) => {
    out(err ? { type: "ack_timeout", id: command.id } : { type: "ack", id: command.id, args: answer });
  });
}).on("close", () => {
  socket.close();
  process.stdout.write("", () => process.exit(0));
});
