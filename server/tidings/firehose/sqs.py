"""SQS: messages sent with `SendMessageBatch` (at most 10 entries and 256 KiB per call), JSON
bodies. A standard queue gets one SQS message per firehose message (the JSON list of its
updates); a FIFO queue (`.fifo`) gets one per feed update, with the feed as message group id
(SQS keeps each feed's order; a reaction event's group is its activity, `activity:<id>`, so
each activity's reaction events keep theirs) and a deduplication id derived from the message
id (a retry within SQS's five-minute window is dropped by SQS). A FIFO queue's entries go in
`lanes` by group, the calls of each lane one after the other (each feed's updates in order),
the lanes at once: a 10,000-feed batch is not 1,000 calls in a row."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..config import SqsEndpoint
from ..store.mongo.deliveries import Message
from .senders import DELIVERED, Outcome

GROUP_ID = re.compile(r"[!-~]{1,128}")
MAX_ENTRIES = 10
MAX_CALL_BYTES = 262_144


class SqsSender:
    kind = "sqs"
    batch = MAX_ENTRIES

    def __init__(self, endpoint: SqsEndpoint, client: Any, lanes: int = 1) -> None:
        self.queue_url = endpoint.queue_url
        self.fifo = endpoint.fifo
        self.ordered = self.fifo
        self.client = client  # an aiobotocore SQS client
        self.lanes = max(1, lanes) if self.fifo else 1

    def _entries(self, message: Message) -> list[dict[str, str]]:
        if not self.fifo:
            return [{"MessageBody": message.body}]
        out = []
        for index, element in enumerate(json.loads(message.body)):
            dedup = hashlib.sha256(f"{message.id}:{index}".encode()).hexdigest()
            out.append({
                "MessageBody": json.dumps([element], separators=(",", ":"), ensure_ascii=False),
                "MessageGroupId": _group_id(_group_of(element)),
                "MessageDeduplicationId": dedup,
            })  # fmt: skip
        return out

    async def send(self, messages: Sequence[Message]) -> dict[str, Outcome]:
        lanes: list[list[tuple[str, dict[str, str]]]] = [[] for _ in range(self.lanes)]
        for m in messages:
            for entry in self._entries(m):
                group = entry.get("MessageGroupId", "")
                lane = int(hashlib.sha256(group.encode()).hexdigest()[:8], 16) % self.lanes
                lanes[lane].append((m.id, entry))
        failed: dict[str, str] = {}
        for found in await asyncio.gather(*(self._lane(lane) for lane in lanes if lane)):
            failed.update(found)
        return {
            m.id: Outcome(ok=False, error=failed[m.id]) if m.id in failed else DELIVERED
            for m in messages
        }

    async def _lane(self, entries: list[tuple[str, dict[str, str]]]) -> dict[str, str]:
        """The entries' calls, one after the other (at most 10 entries and 256 KiB each)."""
        failed: dict[str, str] = {}
        call: list[tuple[str, dict[str, str]]] = []
        size = 0
        for owner, entry in entries:
            length = len(entry["MessageBody"].encode())
            if call and (len(call) == MAX_ENTRIES or size + length > MAX_CALL_BYTES):
                failed.update(await self._call(call))
                call, size = [], 0
            call.append((owner, entry))
            size += length
        if call:
            failed.update(await self._call(call))
        return failed

    async def _call(self, call: list[tuple[str, dict[str, str]]]) -> dict[str, str]:
        """One SendMessageBatch; the message ids with an entry that failed, and why."""
        batch = [{"Id": str(n), **entry} for n, (_, entry) in enumerate(call)]
        try:
            answer = await self.client.send_message_batch(QueueUrl=self.queue_url, Entries=batch)
        except (BotoCoreError, ClientError, OSError, TimeoutError) as exc:
            return {owner: f"{type(exc).__name__}: {exc}" for owner, _ in call}
        failed: dict[str, str] = {}
        for item in answer.get("Failed", []):
            owner = call[int(item["Id"])][0]
            failed[owner] = f"{item.get('Code', '?')}: {item.get('Message', '')}"
        return failed


def _group_of(element: dict[str, Any]) -> str:
    """A feed update's feed, or a reaction event's activity."""
    if "feed" in element:
        return str(element["feed"])
    return f"activity:{element.get('activity_id', '')}"


def _group_id(feed: str) -> str:
    """The feed, when SQS takes it as a group id (1-128 printable ASCII characters; a user id
    may hold any letter); else a digest of it (still one group per feed)."""
    if GROUP_ID.fullmatch(feed):
        return feed
    return "feed-" + hashlib.sha256(feed.encode()).hexdigest()
