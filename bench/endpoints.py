"""The firehose benchmark's endpoints: a webhook receiver in this process (aiohttp, each
signature verified with `standardwebhooks`) and moto's SQS in server mode as a child process,
read by long-polling receivers. Both record, per (feed, activity id), the time.time() of the
first receipt."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

from aiobotocore.session import get_session
from aiohttp import web
from standardwebhooks import Webhook

from tidings.runtime.processes import die_with_parent, free_port

from .services import ROOT, log

SECRET = "whsec_" + base64.b64encode(b"tidings-bench-firehose-secret-32").decode()
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
}
SQS_RECEIVERS = 4  # long-polling ReceiveMessage calls at once


class Arrivals:
    """Receipts of feed updates: (feed, activity id) -> first time.time(); messages counted."""

    def __init__(self) -> None:
        self.first: dict[tuple[str, str], float] = {}
        self.messages = 0
        self.elements = 0
        self.duplicates = 0
        self.errors = 0

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
    arrivals, signer = Arrivals(), Webhook(SECRET)

    async def hook(request: web.Request) -> web.Response:
        raw = await request.read()
        at = time.time()
        try:
            body = signer.verify(raw, dict(request.headers))
        except Exception:
            arrivals.errors += 1
            return web.Response(status=400)
        arrivals.record(body, at)
        return web.Response(status=204)

    app = web.Application(client_max_size=8 * 1024 * 1024)
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/hook", arrivals
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def sqs_queue(workdir: str) -> AsyncIterator[tuple[str, str, Arrivals]]:
    """moto's SQS server, one standard queue, and receivers draining it: (server URL, queue
    URL, arrivals)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(os.path.join(workdir, "moto.log"), "ab") as out:  # noqa: ASYNC230
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port),
            cwd=ROOT, env={**os.environ, **AWS_ENV}, stdout=out, stderr=out,
            preexec_fn=die_with_parent(),
        )  # fmt: skip
    arrivals = Arrivals()
    try:
        session = get_session()
        async with session.create_client(
            "sqs", region_name="us-east-1", endpoint_url=url,
            aws_access_key_id="bench", aws_secret_access_key="bench",
        ) as client:  # fmt: skip
            for _ in range(200):
                try:
                    queue = (await client.create_queue(QueueName="bench"))["QueueUrl"]
                    break
                except Exception:
                    await asyncio.sleep(0.1)
            else:
                raise RuntimeError("moto's SQS server did not start")
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
        if process.returncode is None:
            process.terminate()
            await process.wait()
