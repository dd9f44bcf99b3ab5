"""The configured endpoints, numbered as `tidings firehose status` lists them: the webhooks in
config order, then the SQS queues. A message names its endpoint by key (kind and URL), so that
reordering the config does not send a message elsewhere."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..config import FirehoseSettings, SqsEndpoint, WebhookEndpoint, url_location

Kind = Literal["webhook", "sqs"]


@dataclass(frozen=True)
class Endpoint:
    number: int
    kind: Kind
    target: str  # the webhook's URL or the queue's URL
    groups: frozenset[str]  # empty: every group
    config: WebhookEndpoint | SqsEndpoint

    @property
    def key(self) -> str:
        return f"{self.kind} {self.target}"

    @property
    def label(self) -> str:
        """For log lines: its number, kind and host, never a URL's path or query (they may
        carry a token)."""
        return f"{self.kind} endpoint {self.number} ({url_location(self.target)})"

    def wants(self, feed: str) -> bool:
        return not self.groups or feed.partition(":")[0] in self.groups


def endpoints_of(settings: FirehoseSettings) -> list[Endpoint]:
    out: list[Endpoint] = []
    for hook in settings.webhook:
        out.append(Endpoint(len(out), "webhook", hook.url, frozenset(hook.feed_groups), hook))
    for queue in settings.sqs:
        out.append(Endpoint(len(out), "sqs", queue.queue_url, frozenset(queue.feed_groups), queue))
    return out
