// The Tidings dashboard: GET /admin/stats every 2 s, and one feed watched live through the SDK.
import { Tidings } from "./tidings.browser.mjs";

const $ = (id) => document.getElementById(id);
const REFRESH_MS = 2000;
let token = sessionStorage.getItem("tidings.dashboard.token") || "";
let timer, client, subscription, apiKey;

function setText(id, text, cls) {
  const el = $(id);
  el.textContent = text;
  if (cls !== undefined) el.className = el.className.replace(/\b(ok|down|off)\b/g, "").trim() + " " + cls;
}

async function fetchStats() {
  const response = await fetch("/admin/stats", { headers: { Authorization: token }, cache: "no-store" });
  const body = await response.json();
  if (!response.ok) throw new Error(body.detail || `HTTP ${response.status}`);
  return body;
}

function quantile(buckets, counts, q) {
  const total = counts.reduce((a, b) => a + b, 0);
  if (!total) return null;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    seen += counts[i];
    if (seen >= q * total) return buckets[i];
  }
  return buckets[buckets.length - 1];
}

function label(le) {
  if (le === "+Inf") return "∞";
  const s = Number(le);
  return s < 1 ? `${Math.round(s * 1000)}ms` : `${s}s`;
}

function drawHistogram(latency) {
  const svg = $("histogram");
  const buckets = latency.buckets || [];
  const counts = buckets.map(() => 0);
  for (const path of Object.values(latency.paths || {})) path.counts.forEach((c, i) => (counts[i] += c));
  const max = Math.max(1, ...counts);
  const width = 560 / Math.max(1, buckets.length);
  const parts = buckets.map((le, i) => {
    const h = Math.round((counts[i] / max) * 150);
    const x = i * width;
    return `<rect x="${x + 3}" y="${170 - h}" width="${width - 6}" height="${h}"><title>≤ ${label(le)}: ${counts[i]}</title></rect>` +
      `<text x="${x + width / 2}" y="184" text-anchor="middle">${label(le)}</text>` +
      (counts[i] ? `<text x="${x + width / 2}" y="${165 - h}" text-anchor="middle">${counts[i]}</text>` : "");
  });
  svg.innerHTML = parts.join("");
  const total = counts.reduce((a, b) => a + b, 0);
  const p50 = quantile(buckets, counts, 0.5);
  const p99 = quantile(buckets, counts, 0.99);
  $("latency-summary").textContent = total ? `${total} deliveries · p50 ≤ ${label(p50)} · p99 ≤ ${label(p99)}` : "no deliveries yet";
}

function render(stats) {
  apiKey = stats.api_key;
  setText("redis", stats.redis, stats.redis);
  setText("presence", `presence: ${stats.presence}`);
  setText("sockets", String(stats.sockets));
  setText("jobs", String(stats.fanout.jobs_running));
  setText("jobs-stored", `running · ${stats.fanout.jobs_stored} stored (in flight anywhere)`);
  const f = stats.firehose;
  setText("firehose", `${f.in_flight} in flight`);
  setText("firehose-detail", `${f.due} due · ${f.dead} dead · ${Object.keys(f.endpoints).length} endpoints`);
  const rows = stats.nodes.map((n) =>
    `<tr><td>${escapeHtml(n.node)}${n.self ? " (this)" : ""}</td><td>${n.sockets}</td><td>${n.fanout_jobs_running}</td><td class="${n.redis}">${n.redis}</td></tr>`);
  $("nodes").querySelector("tbody").innerHTML = rows.join("");
  drawHistogram(stats.latency);
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

async function refresh() {
  try {
    render(await fetchStats());
    setText("status", "connected", "ok");
  } catch (error) {
    setText("status", String(error.message || error), "down");
  }
}

function start() {
  clearInterval(timer);
  refresh();
  timer = setInterval(refresh, REFRESH_MS);
}

function showActivity(activity) {
  const li = document.createElement("li");
  li.dataset.id = activity.id;
  const text = [activity.actor, activity.verb, activity.object].join(" ");
  const extra = activity.text ? ` — ${activity.text}` : "";
  li.innerHTML = `<span class="id">${escapeHtml(activity.id)}</span><span>${escapeHtml(text + extra)}</span>`;
  $("activities").prepend(li);
}

async function watch(feed) {
  if (subscription) await subscription.unsubscribe();
  if (!client) {
    if (!apiKey) render(await fetchStats());
    client = new Tidings({ url: location.origin, apiKey, token, transports: ["websocket"] });
    client.on("state", (state) => setText("feed-status", state));
  }
  $("activities").innerHTML = "";
  const recent = await client.feed(feed).get({ limit: 10 });
  for (const activity of recent.results.slice().reverse()) showActivity(activity);
  const since = recent.results.length ? recent.results[0].id : undefined;
  subscription = await client.feed(feed).subscribe(showActivity, {
    since,
    onRemoved: ({ ids }) => ids.forEach((id) => document.querySelector(`li[data-id="${CSS.escape(id)}"]`)?.classList.add("removed")),
    onError: (error) => setText("feed-status", String(error.message || error), "down"),
  });
  setText("feed-status", `watching ${feed}`, "ok");
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  token = $("token").value.trim();
  sessionStorage.setItem("tidings.dashboard.token", token);
  client?.close();
  client = undefined;
  subscription = undefined;
  start();
});

$("watch").addEventListener("submit", (event) => {
  event.preventDefault();
  watch($("feed").value.trim()).catch((error) => setText("feed-status", String(error.message || error), "down"));
});

if (token) {
  $("token").value = token;
  start();
}
