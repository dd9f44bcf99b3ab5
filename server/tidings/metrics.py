"""Prometheus metrics, served on /metrics."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2.5, 5, 10, 30, 60)

HTTP_REQUESTS = Counter(
    "tidings_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "tidings_http_request_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
FANOUT_BATCHES = Counter("tidings_fanout_batches_total", "Fanout batches stored", ["kind"])
FANOUT_ENTRIES = Counter(
    "tidings_fanout_entries_total", "Follower feed entries written or removed", ["kind"]
)
FANOUT_JOBS = Gauge("tidings_fanout_jobs_running", "Fanout jobs running on this node")
FANOUT_RATE = Gauge(
    "tidings_fanout_rate_entries_per_second",
    "Follower entries this node's fanout batches store per second (smoothed): with "
    "fanout.push_budget_ms, where a feed goes pull",
)
FANOUT_TAKEOVERS = Counter("tidings_fanout_takeovers_total", "Abandoned jobs taken over")
WRITES_IN_FLIGHT = Gauge(
    "tidings_writes_in_flight", "Writes running on this node, whether their caller waits or left"
)
FANOUT_AWAITED = Counter(
    "tidings_fanout_awaited_total",
    "Writes with fanout jobs, by what their answer waited for (fanout/completion.py): "
    "done (the jobs), budget (fanout.sync_budget_ms ran out), large (more follower feeds "
    "than fanout.sync_max_feeds: none)",
    ["outcome"],
)
INSERT_TO_EMIT = Histogram(
    "tidings_insert_to_emit_seconds",
    "From an insert's arrival to the feed.update emit of a feed holding it",
    ["path"],
    buckets=LATENCY_BUCKETS,
)
SOCKETS = Gauge("tidings_connected_sockets", "Connected Socket.IO clients")
DELIVERIES = Counter(
    "tidings_deliveries_total",
    "feed.update events handed to sockets, by path (fast WebSocket path or python-socketio)",
    ["path"],
)
BROADCAST_SECONDS = Histogram(
    "tidings_broadcast_seconds",
    "Time to hand one event to every socket of this node in its rooms",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
BACKLOGGED_SOCKETS = Gauge(
    "tidings_backlogged_sockets", "Fast-path sockets with events waiting for their transport"
)
SLOW_CONSUMERS = Counter(
    "tidings_slow_consumer_disconnects_total", "Sockets dropped for not reading their events"
)
TOKEN_EXPIRIES = Counter(
    "tidings_token_expiry_disconnects_total", "Sockets dropped after their token expired"
)
REDIS_UP = Gauge("tidings_redis_up", "1 while the Redis pub/sub link works, 0 while it is down")
BUS_RECEIVED = Counter(
    "tidings_bus_messages_received_total", "Messages of other nodes this node decoded", ["kind"]
)
ROUTED_ROOMS = Gauge(
    "tidings_bus_routed_rooms", "Rooms whose events this node hears on their own channels"
)
SUBSCRIPTIONS = Counter("tidings_subscriptions_total", "Feed subscriptions", ["result"])
CACHE_BYTES = Gauge(
    "tidings_cache_bytes",
    "Measured memory of what this node keeps of the store (cache.activities_mb, cache.heads_mb)",
    ["cache"],
)
CACHE_ITEMS = Gauge(
    "tidings_cache_items", "Activities and feed heads this node keeps in memory", ["cache"]
)
CACHE_LOOKUPS = Gauge(
    "tidings_cache_lookups", "Lookups of this node's caches since it started", ["cache", "result"]
)


def render() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST


PRESENCE_MEMBERS = Gauge(
    "tidings_presence_members", "Presence members (a user in a room) with a socket on this node"
)
PRESENCE_NODES_GONE = Counter(
    "tidings_presence_nodes_gone_total",
    "Dead nodes whose members this node made leave: claimed (its time passed) or swept (missing)",
    ["how"],
)
RATE_LIMITED = Counter(
    "tidings_rate_limited_total",
    "Calls refused by the rate limits, by endpoint class and by the scope that refused first",
    ["kind", "scope"],
)
RATE_COUNTED = Counter(
    "tidings_rate_counted_total", "Calls counted by the rate limits, by where", ["where"]
)
ASYNCIO_TASKS = Gauge("tidings_asyncio_tasks", "asyncio tasks alive on this node's event loop")
EVENT_LOOP_LAG = Gauge(
    "tidings_event_loop_lag_seconds",
    "How late this node's event loop ran a timer due: the largest of the last 10 s's measurements",
)
SOCKET_PUBLISHES = Counter(
    "tidings_socket_publishes_total", "publish events over the socket, by result", ["result"]
)
FIREHOSE_DELIVERED = Counter(
    "tidings_firehose_delivered_total", "Firehose messages delivered, by endpoint kind", ["kind"]
)
FIREHOSE_RETRIED = Counter(
    "tidings_firehose_retried_total", "Firehose deliveries failed and retried later", ["kind"]
)
FIREHOSE_DEAD = Counter(
    "tidings_firehose_dead_total", "Firehose messages dead-lettered, by endpoint kind", ["kind"]
)
FIREHOSE_DISABLED = Counter(
    "tidings_firehose_disabled_total", "Firehose endpoints disabled by a 410 answer", ["kind"]
)
FIREHOSE_SKIPPED = Counter(
    "tidings_firehose_skipped_total",
    "Feed updates not written for a firehose endpoint while it was disabled",
    ["kind"],
)
FIREHOSE_LATENCY = Histogram(
    "tidings_firehose_latency_seconds",
    "From an insert's arrival to its firehose message's hand-over to the endpoint",
    ["kind"],
    buckets=LATENCY_BUCKETS,
)
