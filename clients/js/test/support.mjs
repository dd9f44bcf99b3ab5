// Real services for the SDK's tests: the store (TIDINGS_TEST_MONGODB_URL, given by the pytest
// wrapper, or an embedded SecantusDB started here), redis-server, and `python -m tidings serve`
// processes, as tests/support.py starts them for the Python tests.
import { spawn } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { createServer, Socket } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
export const PYTHON = process.env.TIDINGS_PYTHON || join(ROOT, ".venv", "bin", "python");
export const API_KEY = "test-key";
export const API_SECRET = "test-secret-0123456789abcdef-0123456789";
const TMP = mkdtempSync(join(tmpdir(), "tidings-js-"));

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function waitFor(predicate, what, timeout = 20_000, interval = 50) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await sleep(interval);
  }
}

export function freePort() {
  return new Promise((res, rej) => {
    const server = createServer();
    server.once("error", rej);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => res(port));
    });
  });
}

function portAnswers(port, probe, expect) {
  return new Promise((res) => {
    const socket = new Socket();
    const done = (ok) => { socket.destroy(); res(ok); };
    socket.setTimeout(300, () => done(false));
    socket.once("error", () => done(false));
    socket.connect(port, "127.0.0.1", () => {
      if (!probe) return done(true);
      socket.write(probe);
      socket.once("data", (data) => done(data.toString().startsWith(expect)));
    });
  });
}

function child(cmd, args, env = {}) {
  const proc = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "pipe"] });
  proc.log = "";
  proc.stderr.on("data", (d) => { proc.log = (proc.log + d.toString()).slice(-4000); });
  return proc;
}

function stopped(proc, signal = "SIGTERM", timeout = 20_000) {
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((res) => {
    const timer = setTimeout(() => proc.kill("SIGKILL"), timeout);
    proc.once("exit", () => { clearTimeout(timer); res(); });
    proc.kill(signal);
  });
}

export async function startStore() {
  if (process.env.TIDINGS_TEST_MONGODB_URL) return { url: process.env.TIDINGS_TEST_MONGODB_URL, stop: async () => {} };
  const port = await freePort();
  const proc = child(PYTHON, ["-m", "secantus", "--host", "127.0.0.1", "--port", String(port),
    "--storage-path", join(TMP, `store-${port}`), "--log-level", "WARNING"]);
  await waitFor(() => portAnswers(port), "the embedded store", 60_000);
  return { url: `mongodb://127.0.0.1:${port}/?directConnection=true`, stop: () => stopped(proc) };
}

export class Redis {
  constructor(port) { this.port = port; this.proc = undefined; }
  get url() { return `redis://127.0.0.1:${this.port}/0`; }
  async start() {
    this.port ??= await freePort();
    this.proc = child(process.env.TIDINGS_REDIS_SERVER || "redis-server", ["--port", String(this.port),
      "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", TMP]);
    await waitFor(() => portAnswers(this.port, "PING\r\n", "+PONG"), "redis-server", 10_000);
    return this;
  }
  stop() { return stopped(this.proc); }
}

export class Server {
  constructor({ storeUrl, database, redisUrl = "", env = {} }) {
    this.storeUrl = storeUrl;
    this.database = database ?? `js_${randomBytes(6).toString("hex")}`;
    this.redisUrl = redisUrl;
    this.env = env;
    this.port = undefined;
    this.proc = undefined;
  }
  get url() { return `http://127.0.0.1:${this.port}`; }
  async start() {
    this.port ??= await freePort();
    this.proc = child(PYTHON, ["-m", "tidings", "serve", "--host", "127.0.0.1"], {
      TIDINGS_MONGODB_URL: this.storeUrl, TIDINGS_MONGODB_DATABASE: this.database,
      TIDINGS_REDIS_URL: this.redisUrl, TIDINGS_AUTH_API_KEY: API_KEY, TIDINGS_AUTH_API_SECRET: API_SECRET,
      TIDINGS_SERVER_PORT: String(this.port), TIDINGS_FANOUT_POLL_SECONDS: "0.5", ...this.env,
    });
    const proc = this.proc;
    await waitFor(async () => {
      if (proc.exitCode !== null) throw new Error(`tidings exited ${proc.exitCode}: ${proc.log}`);
      try {
        return (await fetch(this.url + "/readyz")).status === 200;
      } catch {
        return false;
      }
    }, `tidings on ${this.port}`, 60_000, 100);
    return this;
  }
  stop() { return stopped(this.proc); }
  kill() { return stopped(this.proc, "SIGKILL"); }
}

function b64url(data) {
  return Buffer.from(data).toString("base64url");
}

/** A JWT signed as the server checks them (HS256 with the app secret). */
export function token(claims, ttlSeconds) {
  const body = { ...claims };
  if (ttlSeconds !== undefined) body.exp = Math.floor(Date.now() / 1000 + ttlSeconds);
  const head = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" })) + "." + b64url(JSON.stringify(body));
  return head + "." + createHmac("sha256", API_SECRET).update(head).digest("base64url");
}

export const SERVER_TOKEN = token({ resource: "*", action: "*", feed_id: "*" });
export const uid = () => randomBytes(5).toString("hex");

/** Add an activity over REST until it is acknowledged (the server may be restarting): the
 * same `foreign_id` + `time` make a retry the same activity. */
export async function addUntilStored(url, feed, activity, timeout = 30_000) {
  const [slug, user] = feed.split(":");
  const deadline = Date.now() + timeout;
  for (;;) {
    try {
      const response = await fetch(`${url}/api/v1.0/feed/${slug}/${user}/?api_key=${API_KEY}`, {
        method: "POST",
        headers: { Authorization: SERVER_TOKEN, "Content-Type": "application/json", "stream-auth-type": "jwt" },
        body: JSON.stringify(activity),
      });
      if (response.status === 201) return await response.json();
      if (response.status < 500) throw new Error(`add refused: ${response.status} ${await response.text()}`);
    } catch (error) {
      if (String(error.message).startsWith("add refused")) throw error;
    }
    if (Date.now() > deadline) throw new Error("add not acknowledged in time");
    await sleep(100);
  }
}

/** Records what a subscription hands over, and checks the promise: each once, oldest first. */
export function collector() {
  const got = [];
  return {
    got,
    onActivity: (activity) => got.push(activity),
    ids: () => got.map((a) => a.id),
    assertExactlyOnceInOrder(expected, assert) {
      const ids = got.map((a) => a.id);
      assert.deepEqual([...new Set(ids)], ids, "an activity was handed over twice");
      assert.deepEqual(ids, [...expected].sort(), "not every activity, or not oldest first");
    },
    /** Each once, none missing, in any order (live events of concurrent fanouts). */
    assertExactlyOnce(expected, assert) {
      const ids = got.map((a) => a.id);
      assert.deepEqual([...new Set(ids)], ids, "an activity was handed over twice");
      assert.deepEqual([...ids].sort(), [...expected].sort(), "not every activity");
    },
  };
}

/** `time` of the n-th activity of a run: increasing, so ids (which sort by time) are too. */
export function timeOf(base, n) {
  return new Date(base + n).toISOString().replace("Z", "");
}
