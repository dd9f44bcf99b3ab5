"""Webhooks: a signed POST per message (Standard Webhooks: `webhook-id`, `webhook-timestamp`,
`webhook-signature`, signed by the `standardwebhooks` package). The id is the message's, the
same on every retry, so that a receiver can drop repeats. 2xx: delivered; 410: the endpoint is
gone (disabled); anything else, a redirect or a timeout: retried later."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import aiohttp
from standardwebhooks import Webhook

from ..config import WebhookEndpoint
from ..store.mongo.deliveries import Message
from .senders import DELIVERED, Outcome

USER_AGENT = "tidings-firehose/1"
MAX_ANSWER_BYTES = 65536  # of an answer's body read (a fully read one keeps its connection)


class WebhookSender:
    kind = "webhook"
    batch = 1
    ordered = False

    def __init__(
        self, endpoint: WebhookEndpoint, session: aiohttp.ClientSession, timeout: float
    ) -> None:
        self.url = endpoint.url
        self.signer = Webhook(str(endpoint.secret))
        self.session = session
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def send(self, messages: Sequence[Message]) -> dict[str, Outcome]:
        return {m.id: await self._post(m) for m in messages}

    async def _post(self, message: Message) -> Outcome:
        now = datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": message.id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self.signer.sign(message.id, now, message.body),
        }
        try:
            async with self.session.post(
                self.url, data=message.body.encode(), headers=headers, timeout=self.timeout,
                allow_redirects=False,
            ) as response:  # fmt: skip
                await response.content.read(MAX_ANSWER_BYTES)  # unread: aiohttp closes it
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Outcome(ok=False, error=f"{type(exc).__name__}: {exc}")
        if 200 <= status < 300:
            return DELIVERED
        if status == 410:
            return Outcome(ok=False, gone=True, error="HTTP 410 Gone")
        return Outcome(ok=False, error=f"HTTP {status}")
