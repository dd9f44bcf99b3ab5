"""The firehose of one node, started and stopped as one cleanup context (app.py): the HTTP
client pool of the webhooks, an SQS client per queue (and its queue's message size limit), the
outbox writer and the worker."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from ..config import FirehoseSettings, SqsEndpoint, WebhookEndpoint
from ..runtime.background import spawn
from ..store.mongo.client import Database
from ..store.mongo.deliveries import DeliveryStore
from .endpoints import endpoints_of
from .outbox import Firehose
from .senders import Sender
from .sqs import SqsSender
from .webhook import WebhookSender
from .worker import DeliveryWorker

log = logging.getLogger(__name__)
SQS_LARGEST = 1_048_576  # the largest MaximumMessageSize SQS lets a queue have


@contextlib.asynccontextmanager
async def running_firehose(
    settings: FirehoseSettings, db: Database, node: str, grace: float
) -> AsyncIterator[Firehose]:
    endpoints = endpoints_of(settings)
    if not endpoints:
        yield Firehose()
        return
    store = DeliveryStore(db, node, timedelta(seconds=settings.lease_seconds))
    async with contextlib.AsyncExitStack() as stack:
        senders: dict[str, Sender] = {}
        limits: dict[str, int] = {}
        session: aiohttp.ClientSession | None = None
        aws = get_session()
        for endpoint in endpoints:
            if isinstance(endpoint.config, WebhookEndpoint):
                if session is None:
                    connector = aiohttp.TCPConnector(limit_per_host=settings.concurrency)
                    session = await stack.enter_async_context(
                        aiohttp.ClientSession(connector=connector)
                    )
                senders[endpoint.key] = WebhookSender(
                    endpoint.config, session, settings.timeout_seconds
                )
            elif isinstance(endpoint.config, SqsEndpoint):
                config = AioConfig(
                    connect_timeout=settings.timeout_seconds,
                    read_timeout=settings.timeout_seconds,
                    retries={"max_attempts": 1},  # the firehose retries on its own
                    max_pool_connections=settings.concurrency,
                )
                queue = endpoint.config
                creating = aws.create_client(
                    "sqs", region_name=queue.region, endpoint_url=queue.endpoint_url, config=config
                )
                client = await stack.enter_async_context(creating)
                senders[endpoint.key] = SqsSender(endpoint.config, client, settings.concurrency)
                limits[endpoint.key] = await queue_limit(client, endpoint.label, queue.queue_url)
        worker = DeliveryWorker(store, endpoints, senders, settings)
        task = spawn(worker.run())  # a failure is logged (it should never end by itself)
        firehose = Firehose(
            store, endpoints, worker, settings.max_message_bytes, settings.retry_initial_seconds,
            limits,
        )  # fmt: skip
        log.info("firehose: %d endpoints; activities above %d bytes of JSON are refused",
                 len(endpoints), firehose.activity_bytes(1 << 62))  # fmt: skip
        try:
            yield firehose
        finally:
            await worker.close(task, grace)


async def queue_limit(client: Any, label: str, queue_url: str) -> int:
    """The queue's `MaximumMessageSize` (what SQS refuses above, for ever); SQS's largest when
    it cannot be read (logged: messages above the queue's own limit would then fail)."""
    try:
        answer = await client.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["MaximumMessageSize"]
        )
        return int(answer["Attributes"]["MaximumMessageSize"])
    except (BotoCoreError, ClientError, OSError, TimeoutError, KeyError, ValueError) as exc:
        log.warning("firehose: could not read the MaximumMessageSize of %s (%s): assuming %d",
                    label, exc, SQS_LARGEST)  # fmt: skip
        return SQS_LARGEST
