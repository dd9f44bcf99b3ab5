"""The firehose benchmark's endpoints: a webhook receiver in this process (aiohttp, each
signature verified with `standardwebhooks`) and moto's SQS in server mode as a child process,
read by long-polling receivers. Both record, per (feed, activity id), the time.time() of the
first receipt."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiobotocore.session import get_session

from harness.sqs import AWS_ENV, MotoServer
from harness.webhooks import SECRET, Receiver

from .services import log

__all__ = ["AWS_ENV", "SECRET", "Arrivals", "sqs_queue", "webhook_receiver"]

SQS_RECEIVERS = 4  # long-polling ReceiveMessage calls at once


class Arrivals:
    """Receipts of feed updates: (feed, activity id) -> first time.time(); messages counted."""

    def __init__(self) -> None:
        self.first: dict[tuple[str, str], float] = {}
        self.messages = 0
        self.elements = 0
        self.duplicates = 0
        self.receiver: Receiver | None = None

    @property
    def errors(self) -> int:
        """Deliveries refused for a bad signature."""
        return self.receiver.bad_signatures if self.receiver is not None else 0

    def record(self, body: list[dict[str, Any]], at: float) -> None:
        self.messages += 1
        for element in body:
            self.elements += 1
            for activity in element.get("new", ()):
                key = (str(element["feed"]), str(activity["id"]))
                if key in self.first:
                    self.duplicates += 1
                else:
                    self.first[key] = at


@contextlib.asynccontextmanager
async def webhook_receiver() -> AsyncIterator[tuple[str, Arrivals]]:
    """The harness's receiver in this event loop, recording arrivals (each signature checked)."""
    arrivals = Arrivals()
    receiver = Receiver(SECRET, on_body=arrivals.record)
    arrivals.receiver = receiver
    async with receiver.serving():
        yield receiver.url, arrivals


@contextlib.asynccontextmanager
async def sqs_queue(workdir: str) -> AsyncIterator[tuple[str, str, Arrivals]]:
    """moto's SQS server, one standard queue, and receivers draining it: (server URL, queue
    URL, arrivals)."""
    moto = MotoServer(Path(workdir) / "moto.log")
    await asyncio.to_thread(moto.start)
    url = moto.url
    arrivals = Arrivals()
    try:
        session = get_session()
        async with session.create_client(
            "sqs", region_name=AWS_ENV["AWS_DEFAULT_REGION"], endpoint_url=url,
            aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        ) as client:  # fmt: skip
            queue = (await client.create_queue(QueueName="bench"))["QueueUrl"]
            log(f"moto SQS on {url}, queue {queue}")

            deleting: set[asyncio.Task[Any]] = set()

            async def receive() -> None:
                while True:
                    got = await client.receive_message(
                        QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1
                    )
                    at = time.time()
                    messages = got.get("Messages", [])
                    for message in messages:
                        arrivals.record(json.loads(message["Body"]), at)
                    if messages:  # deleted meanwhile: the next receive does not wait for it
                        entries = [
                            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                            for i, m in enumerate(messages)
                        ]
                        task = asyncio.create_task(
                            client.delete_message_batch(QueueUrl=queue, Entries=entries)
                        )
                        deleting.add(task)
                        task.add_done_callback(deleting.discard)  # fmt: skip

            tasks = [asyncio.create_task(receive()) for _ in range(SQS_RECEIVERS)]
            try:
                yield url, queue, arrivals
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await asyncio.to_thread(moto.stop)
