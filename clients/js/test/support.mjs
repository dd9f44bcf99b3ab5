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
    this.restarting = false;
    this.up = undefined;
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
  /** kill -9, then start again on the same port and database without waiting for it:
   * `restarting` until it is up, and `up` resolves then. */
  async killAndRestart() {
    this.restarting = true;
    await this.kill();
    this.up = this.start().finally(() => { this.restarting = false; });
    this.up.catch(() => {}); // awaited by the test
  }
}

function b64url(data) {
  return Buffer.from(data).toString("base64url");
}

/** A JWT signed as the server checks them (HS256 with the app secret); `iat` is added when
 * `issuedAt` (seconds since the epoch) is given. */
export function token(claims, ttlSeconds, issuedAt) {
  const body = { ...claims };
  if (ttlSeconds !== undefined) body.exp = Math.floor(Date.now() / 1000 + ttlSeconds);
  if (issuedAt !== undefined) body.iat = issuedAt;
  const head = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" })) + "." + b64url(JSON.stringify(body));
  return head + "." + createHmac("sha256", API_SECRET).update(head).digest("base64url");
}

export const SERVER_TOKEN = token({ resource: "*", action: "*", feed_id: "*" });
export const uid = () => randomBytes(5).toString("hex");

async function post(url, feed, activity) {
  const [slug, user] = feed.split(":");
  return fetch(`${url}/api/v1.0/feed/${slug}/${user}/?api_key=${API_KEY}`, {
    method: "POST",
    headers: { Authorization: SERVER_TOKEN, "Content-Type": "application/json", "stream-auth-type": "jwt" },
    body: JSON.stringify(activity),
  });
}

/** Add an activity (or `{activities: [...]}`) over REST: the stored body; anything but 201 fails. */
export async function add(url, feed, activity) {
  const response = await post(url, feed, activity);
  if (response.status !== 201) throw new Error(`add answered ${response.status} ${await response.text()}`);
  return response.json();
}

/** `add` while `server` restarts: a refused connection or a 5xx is tried again until the server
 * is up (the same `foreign_id` + `time` make a retry the same activity); once it is up, or for
 * any other answer, as `add`. */
export async function addThroughRestart(server, feed, activity, timeout = 30_000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const restarting = server.restarting;
    let response;
    try {
      response = await post(server.url, feed, activity);
    } catch (error) {
      if (!restarting) throw error;
    }
    if (response?.status === 201) return response.json();
    if (response && !(restarting && response.status >= 500)) {
      throw new Error(`add answered ${response.status} ${await response.text()}`);
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

/** Add a marker activity to `feed` (at `time`) and wait until `seen` got it: what came to the
 * subscription before it (a repeat, say) has been handed over by then. Answers its id. */
export async function marker(url, feed, seen, time) {
  const [, user] = feed.split(":");
  const { id } = await add(url, feed, { actor: user, verb: "marker", object: "marker:1", time });
  await waitFor(() => seen.ids().includes(id), "the marker activity");
  return id;
}

/** `time` of the n-th activity of a run: increasing, so ids (which sort by time) are too. */
export function timeOf(base, n) {
  return new Date(base + n).toISOString().replace("Z", "");
}
