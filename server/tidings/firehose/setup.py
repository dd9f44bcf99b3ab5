"""The firehose of one node, started and stopped as one cleanup context (app.py): the HTTP
client pool of the webhooks, an SQS client per queue, the outbox writer and the worker."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from ..background import spawn
from ..config_firehose import FirehoseSettings, SqsEndpoint, WebhookEndpoint
from ..store.deliveries import DeliveryStore
from ..store.mongo import Database
from .endpoints import endpoints_of
from .outbox import Firehose
from .senders import Sender
from .sqs import SqsSender
from .webhook import WebhookSender
from .worker import DeliveryWorker

log = logging.getLogger(__name__)


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
        worker = DeliveryWorker(store, endpoints, senders, settings)
        task = spawn(worker.run())  # a failure is logged (it should never end by itself)
        log.info("firehose: %d endpoints", len(endpoints))
        try:
            yield Firehose(
                store, endpoints, worker, settings.max_message_bytes,
                settings.retry_initial_seconds,
            )  # fmt: skip
        finally:
            await worker.close(task, grace)
