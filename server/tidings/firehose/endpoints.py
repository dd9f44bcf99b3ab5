"""The configured endpoints, numbered as `tidings firehose status` lists them: the webhooks in
config order, then the SQS queues. A message names its endpoint by key (kind and URL), so that
reordering the config does not send a message elsewhere.

`feed_groups` chooses the feed updates an endpoint gets, and, for an endpoint that takes
reaction events (`reactions = true`), those too: a reaction event goes to it when a feed that
the reaction's activity was added to (a feed that owns it, or a `to` feed it named) is of one
of its groups. Not the feeds the activity reached through follows: a reaction belongs to the
activity, and an endpoint for `timeline` feeds would otherwise get every reaction there is."""

from __future__ import annotations

from collections.abc import Collection
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

    @property
    def reactions(self) -> bool:
        return self.config.reactions

    def wants_reaction(self, feeds: Collection[str]) -> bool:
        """A reaction event to an activity added to `feeds` (read only when `groups` is set)."""
        return self.reactions and (not self.groups or any(self.wants(f) for f in feeds))


def endpoints_of(settings: FirehoseSettings) -> list[Endpoint]:
    out: list[Endpoint] = []
    for hook in settings.webhook:
        out.append(Endpoint(len(out), "webhook", hook.url, frozenset(hook.feed_groups), hook))
    for queue in settings.sqs:
        out.append(Endpoint(len(out), "sqs", queue.queue_url, frozenset(queue.feed_groups), queue))
    return out
