"""What this node reports to the dashboard (GET /admin/stats), and the other nodes' reports.

Each node's numbers come from its Prometheus metrics (sockets, fanout jobs running, the Redis
link, the insert→emit histogram). With Redis, every node writes its report every
`PUBLISH_SECONDS` into one hash (`<redis.channel>:stats`, field = node id) with the time it
stops counting; a reader drops the reports past it (a node that died), so the dashboard sees
every live node without any node asking the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from redis.exceptions import RedisError

from ..metrics import FANOUT_JOBS, FANOUT_RATE, INSERT_TO_EMIT, LATENCY_BUCKETS, SOCKETS
from .redis_bus import RedisBus

log = logging.getLogger(__name__)
PUBLISH_SECONDS = 2.0
STALE_SECONDS = 3 * PUBLISH_SECONDS
Report = dict[str, Any]


def _gauge(metric: Any) -> float:
    for family in metric.collect():
        for sample in family.samples:
            return float(sample.value)
    return 0.0


def latency() -> dict[str, Any]:
    """The insert→emit histogram of this node: per path, the count in each bucket (not
    cumulative), the total count and the sum of seconds."""
    paths: dict[str, dict[str, Any]] = {}
    bounds: list[str] = []
    for family in INSERT_TO_EMIT.collect():
        for sample in family.samples:
            path = sample.labels.get("path", "")
            entry = paths.setdefault(path, {"cumulative": [], "count": 0, "sum": 0.0})
            if sample.name.endswith("_bucket"):
                entry["cumulative"].append(sample.value)
                if len(entry["cumulative"]) > len(bounds):
                    bounds.append(sample.labels["le"])
            elif sample.name.endswith("_count"):
                entry["count"] = int(sample.value)
            elif sample.name.endswith("_sum"):
                entry["sum"] = float(sample.value)
    if not bounds:  # nothing observed yet: the buckets all the same
        bounds = [str(float(b)) for b in LATENCY_BUCKETS] + ["+Inf"]
    out: dict[str, Any] = {}
    for path, entry in paths.items():
        cumulative = entry.pop("cumulative")
        counts = [int(c - (cumulative[i - 1] if i else 0)) for i, c in enumerate(cumulative)]
        out[path] = {**entry, "counts": counts}
    return {"buckets": bounds, "paths": out}


def merge_latency(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """The histograms of several nodes added up (they share the buckets)."""
    buckets: list[str] = next((r["buckets"] for r in reports if r.get("buckets")), [])
    paths: dict[str, dict[str, Any]] = {}
    for report in reports:
        for path, entry in report.get("paths", {}).items():
            into = paths.setdefault(path, {"count": 0, "sum": 0.0, "counts": [0] * len(buckets)})
            into["count"] += entry["count"]
            into["sum"] += entry["sum"]
            for i, count in enumerate(entry["counts"][: len(buckets)]):
                into["counts"][i] += count
    return {"buckets": buckets, "paths": paths}


def local_report(node: str, redis: str) -> Report:
    return {
        "node": node,
        "sockets": int(_gauge(SOCKETS)),
        "fanout_jobs_running": int(_gauge(FANOUT_JOBS)),
        "fanout_rate": round(_gauge(FANOUT_RATE)),  # entries/s: where push stops paying
        "redis": redis,
        "latency": latency(),
        "at": time.time(),
    }


class StatsBoard:
    """This node's reports in Redis, and the reports of the others."""

    def __init__(self, node: str, link: RedisBus | None, channel: str) -> None:
        self.node, self.link = node, link
        self.key = f"{channel}:stats"

    def report(self) -> Report:
        return local_report(self.node, "off" if self.link is None else self.link.state)

    async def publish(self) -> None:
        if self.link is None or not self.link.up:
            return
        with contextlib.suppress(RedisError, OSError):
            report = {**self.report(), "until": time.time() + STALE_SECONDS}
            await self.link.client().hset(self.key, self.node, json.dumps(report))

    async def others(self) -> list[Report]:
        """The live reports of the other nodes ([] without Redis or while it is down)."""
        if self.link is None or not self.link.up:
            return []
        try:
            raw = await self.link.client().hgetall(self.key)
        except (RedisError, OSError):
            return []
        now, live, stale = time.time(), [], []
        for field, value in raw.items():
            node = field.decode() if isinstance(field, bytes) else str(field)
            report = json.loads(value)
            if report.get("until", 0) < now:
                stale.append(node)
            elif node != self.node:
                live.append(report)
        if stale:
            with contextlib.suppress(RedisError, OSError):
                await self.link.client().hdel(self.key, *stale)
        return sorted(live, key=lambda r: str(r.get("node")))

    async def run(self) -> None:
        """Publish every PUBLISH_SECONDS until cancelled; then take this node's report out."""
        try:
            while True:
                try:
                    await self.publish()
                except Exception:  # a bug: the dashboard loses this node, the loop goes on
                    log.exception("cannot publish this node's stats")
                await asyncio.sleep(PUBLISH_SECONDS)
        finally:
            if self.link is not None and self.link.up:
                with contextlib.suppress(RedisError, OSError):
                    await self.link.client().hdel(self.key, self.node)
