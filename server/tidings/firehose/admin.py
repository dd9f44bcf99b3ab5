"""`tidings firehose status|replay|purge|enable`: the outbox seen from outside a node.

Both talk to the store named by `mongodb.url`, or else to the embedded store that a server on
`server.data_dir` runs (two embedded stores cannot open one data directory at once)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from ..config import ConfigError, Settings
from ..store.mongo import client as mongo
from ..store.mongo import embedded
from ..store.mongo.deliveries import DeliveryStore
from .endpoints import endpoints_of


def _url(settings: Settings) -> str:
    url = str(settings.mongodb.url) or embedded.running_url(settings.server.data_dir)
    if not url:
        raise ConfigError(
            "firehose commands need the store: set mongodb.url (TIDINGS_MONGODB_URL), or start "
            f"the server on the embedded store first (none runs on {settings.server.data_dir})"
        )
    return url


async def _with_store(settings: Settings, work: Any) -> Any:
    client = mongo.connect(_url(settings), settings.mongodb)
    try:
        db = client[settings.mongodb.database]
        store = DeliveryStore(db, "tidings-cli", timedelta(seconds=1))
        return await work(store)
    finally:
        await client.close()


async def status(settings: Settings) -> dict[str, Any]:
    """Per configured endpoint (by number): due, in flight, dead, disabled; and the messages of
    endpoints no longer configured."""

    async def read(store: DeliveryStore) -> dict[str, Any]:
        counts, disabled = await store.status(), await store.disabled()
        endpoints = []
        for endpoint in endpoints_of(settings.firehose):
            row = counts.pop(endpoint.key, {"due": 0, "in_flight": 0, "dead": 0})
            off = disabled.get(endpoint.key)
            endpoints.append({
                "endpoint": endpoint.number, "kind": endpoint.kind, "target": endpoint.target,
                **row, "disabled": None if off is None else str(off.get("reason", "")),
                "skipped": 0 if off is None else int(off.get("skipped", 0)),
            })  # fmt: skip
        unknown = [{"key": key, **row} for key, row in counts.items()]
        return {"endpoints": endpoints, "not_configured": unknown}

    result: dict[str, Any] = await _with_store(settings, read)
    return result


def _key(settings: Settings, endpoint: int | None) -> str | None:
    """The key of endpoint number `endpoint` (None: all of them)."""
    if endpoint is None:
        return None
    known = endpoints_of(settings.firehose)
    if not 0 <= endpoint < len(known):
        raise ConfigError(f"no firehose endpoint {endpoint} (there are {len(known)})")
    return known[endpoint].key


async def replay(settings: Settings, endpoint: int | None, since: datetime | None) -> int:
    """Dead letters back to due (all, or those of endpoint number `endpoint`, dead since
    `since`); the endpoint (all of them) is enabled again."""
    key = _key(settings, endpoint)

    async def run(store: DeliveryStore) -> int:
        return await store.replay(key, since)

    replayed: int = await _with_store(settings, run)
    return replayed


async def purge(settings: Settings, endpoint: int | None, before: datetime | None) -> int:
    """Delete dead letters (all, or those of endpoint number `endpoint`, dead before
    `before`)."""
    key = _key(settings, endpoint)

    async def run(store: DeliveryStore) -> int:
        return await store.purge(key, before)

    purged: int = await _with_store(settings, run)
    return purged


async def enable(settings: Settings, endpoint: int) -> int | None:
    """Enable endpoint number `endpoint` again (its dead letters stay dead: `replay` sends
    them); answer how many updates were skipped while it was disabled (None: it was not)."""
    key = _key(settings, endpoint)
    assert key is not None

    async def run(store: DeliveryStore) -> int | None:
        found = await store.enable(key)
        return None if found is None else int(found.get("skipped", 0))

    skipped: int | None = await _with_store(settings, run)
    return skipped


def status_table(report: dict[str, Any]) -> str:
    lines = [f"{'#':>3} {'kind':8} {'due':>8} {'in flight':>10} {'dead':>8}  target"]
    for row in report["endpoints"]:
        off = ""
        if row["disabled"] is not None:
            off = f"  DISABLED ({row['disabled']}), {row['skipped']} updates skipped"
        lines.append(
            f"{row['endpoint']:>3} {row['kind']:8} {row['due']:>8} {row['in_flight']:>10} "
            f"{row['dead']:>8}  {row['target']}{off}"
        )
    for row in report["not_configured"]:
        lines.append(
            f"{'-':>3} {'?':8} {row['due']:>8} {row['in_flight']:>10} {row['dead']:>8}  "
            f"{row['key']} (not configured)"
        )
    return "\n".join(lines)
