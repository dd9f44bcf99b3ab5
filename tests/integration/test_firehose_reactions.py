"""Reaction events on the firehose: an endpoint with `reactions = true` gets `reaction.added`,
`.updated` and `.deleted` (with the activity's counts) as elements of its messages, signed like
every message; one without gets none (but still the target feeds' activities); an event is
stored before its write answers, a retried write does not duplicate it, and a node killed
between a write and its event loses none.

Real things only: Tidings server processes, the webhook receiver of harness/webhooks.py (it
verifies every signature), moto's SQS in server mode.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from pathlib import Path
from typing import Any

import boto3
import pymongo
import requests

from harness.sqs import AWS_ENV, MotoServer
from harness.webhooks import Receiver
from tests.integration.firehose_calls import FAST, HEADERS, add, call, webhooks
from tests.support import API_KEY, ServerProcess, Store, wait_until

EVENT_KEYS = {"type", "activity_id", "reaction", "reaction_counts", "published_at"}


def attempt(node: ServerProcess, method: str, path: str, **kw: Any) -> requests.Response:
    return requests.request(
        method, f"{node.url}/api/v1.0/{path}", params={"api_key": API_KEY, **kw.pop("params", {})},
        headers=HEADERS, timeout=15, **kw,
    )  # fmt: skip


def react(node: ServerProcess, activity_id: str, uid: str, **extra: Any) -> dict[str, Any]:
    body = {"kind": "like", "activity_id": activity_id, "user_id": uid, **extra}
    return dict(call(node, "POST", "reaction/", json=body).json())


def events(hook: Receiver, reaction_id: str, kind: str | None = None) -> list[dict[str, Any]]:
    """The reaction events of `reaction_id` the receiver got (of type `kind`), in order."""
    return [
        e for _, e in hook.reactions()
        if e["reaction"]["id"] == reaction_id and kind in (None, e["type"])
    ]  # fmt: skip


def ids_of(hook: Receiver, reaction_id: str, kind: str) -> list[str]:
    return [i for i, e in hook.reactions() if e["reaction"]["id"] == reaction_id
            and e["type"] == kind]  # fmt: skip


def outbox(node: ServerProcess, store: Store) -> pymongo.collection.Collection[Any]:
    client: pymongo.MongoClient[Any] = pymongo.MongoClient(store.url)
    return client[node.database]["deliveries"]


def test_an_endpoint_that_takes_reactions_gets_each_write_with_the_counts_others_none(
    store: Store, receivers: list[Receiver], nodes: list[ServerProcess], tmp_path: Path, uid: str
) -> None:
    reacting, plain, raids = Receiver().start(), Receiver().start(), Receiver().start()
    receivers += [reacting, plain, raids]
    env = {**FAST, **webhooks((reacting, []), (plain, []), (raids, ["raid"]),
                              reacting=(reacting, raids))}  # fmt: skip
    node = ServerProcess(store.url, env=env, log_path=tmp_path / "node.log").start()
    nodes.append(node)
    post = add(node, f"user:{uid}")
    raid_post = add(node, f"user:{uid}", to=[f"raid:{uid}"])  # in a raid feed through `to`

    like = react(node, post, uid, data={"n": 1})
    [added] = wait_until(lambda: events(reacting, like["id"]), 15, what="reaction.added")
    assert set(added) == EVENT_KEYS and added["type"] == "reaction.added"
    assert added["activity_id"] == post and added["reaction_counts"] == {"like": 1}
    assert added["reaction"]["data"] == {"n": 1} and added["reaction"]["user_id"] == uid
    assert added["reaction"] == {k: v for k, v in like.items() if k != "duration"}

    call(node, "PUT", f"reaction/{like['id']}/", json={"data": {"n": 2}})
    [updated] = wait_until(lambda: events(reacting, like["id"], "reaction.updated"), 15,
                           what="reaction.updated")  # fmt: skip
    assert updated["reaction"]["data"] == {"n": 2} and updated["reaction_counts"] == {"like": 1}

    call(node, "DELETE", f"reaction/{like['id']}/", params={"soft": "true"})
    [soft] = wait_until(lambda: events(reacting, like["id"], "reaction.deleted"), 15,
                        what="the soft delete")  # fmt: skip
    assert "deleted_at" in soft["reaction"] and soft["reaction_counts"] == {"like": 0}

    call(node, "PUT", f"reaction/{like['id']}/restore/")
    wait_until(lambda: len(events(reacting, like["id"], "reaction.added")) == 2, 15,
               what="the restore, as reaction.added")  # fmt: skip
    restored = events(reacting, like["id"], "reaction.added")[1]
    assert "deleted_at" not in restored["reaction"] and restored["reaction_counts"] == {"like": 1}

    call(node, "DELETE", f"reaction/{like['id']}/")
    wait_until(lambda: len(events(reacting, like["id"], "reaction.deleted")) == 2, 15,
               what="the hard delete")  # fmt: skip
    hard = events(reacting, like["id"], "reaction.deleted")[1]
    assert "deleted_at" not in hard["reaction"] and hard["reaction_counts"] == {"like": 0}
    ids = [i for i, e in reacting.reactions() if e["reaction"]["id"] == like["id"]]
    assert len(ids) == len(set(ids)) == 5, "each write is a message with an id of its own"

    # A reaction with target feeds: its activity reaches them (and the endpoints that take
    # their feed updates) as today; the reaction event only the endpoints that take them.
    shared = react(node, raid_post, uid, kind="share", target_feeds=[f"timeline:{uid}"])
    foreign = f"reaction:{shared['id']}"
    wait_until(lambda: events(raids, shared["id"]), 15, what="the raid feed's reaction event")
    wait_until(lambda: events(reacting, shared["id"]), 15, what="the reaction event")

    def target_activities(hook: Receiver) -> set[str]:
        return {e["feed"] for d in list(hook.deliveries) for e in d.body if "feed" in e
                for a in e["new"] if a.get("foreign_id") == foreign}  # fmt: skip

    wait_until(lambda: f"timeline:{uid}" in target_activities(plain), 15,
               what="the target feed's activity at the endpoint without reactions")  # fmt: skip
    assert f"timeline:{uid}" in target_activities(reacting)
    # `feed_groups = ["raid"]`: only reactions to activities added to a raid feed.
    assert not events(raids, like["id"]) and events(raids, shared["id"])[0]["reaction_counts"] == {
        "share": 1
    }
    assert plain.reactions() == [], "an endpoint without `reactions` got a reaction event"
    for hook in (reacting, plain, raids):
        assert hook.bad_signatures == 0
        assert all(set(e) == EVENT_KEYS for _, e in hook.reactions())


def test_sqs_queues_that_take_reactions_get_them_fifo_grouped_by_activity(
    store: Store, moto: MotoServer, nodes: list[ServerProcess], tmp_path: Path, uid: str
) -> None:
    sqs = boto3.client("sqs", endpoint_url=moto.url, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    plain = sqs.create_queue(QueueName=f"r-plain-{uid}")["QueueUrl"]
    fifo = sqs.create_queue(QueueName=f"r-fifo-{uid}.fifo", Attributes={"FifoQueue": "true"})[
        "QueueUrl"
    ]
    silent = sqs.create_queue(QueueName=f"r-silent-{uid}")["QueueUrl"]
    queues = [
        {"queue_url": q, "region": "us-east-1", "endpoint_url": moto.url, "reactions": q != silent}
        for q in (plain, fifo, silent)
    ]
    env = {**FAST, **AWS_ENV, "TIDINGS_FIREHOSE_SQS": json.dumps(queues)}
    node = ServerProcess(store.url, env=env, log_path=tmp_path / "node.log").start()
    nodes.append(node)
    post = add(node, f"user:{uid}")
    like = react(node, post, uid)
    call(node, "PUT", f"reaction/{like['id']}/", json={"data": {"n": 2}})

    def drain(url: str, into: list[tuple[str | None, dict[str, Any]]]) -> None:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                  AttributeNames=["MessageGroupId"])  # fmt: skip
        for message in got.get("Messages", []):
            group = message.get("Attributes", {}).get("MessageGroupId")
            into += [(group, e) for e in json.loads(message["Body"])]
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    def kinds(into: list[tuple[str | None, dict[str, Any]]]) -> list[str]:
        return [e["type"] for _, e in into if e.get("reaction", {}).get("id") == like["id"]]

    got: dict[str, list[tuple[str | None, dict[str, Any]]]] = {plain: [], fifo: [], silent: []}
    for url in (plain, fifo):
        wait_until(lambda u=url: drain(u, got[u]) or len(kinds(got[u])) == 2, 30, 0.01,
                   what="the reaction events in the queue")  # fmt: skip
    assert sorted(kinds(got[plain])) == ["reaction.added", "reaction.updated"]
    assert kinds(got[fifo]) == ["reaction.added", "reaction.updated"], "out of order"
    [added] = [e for _, e in got[plain] if e.get("type") == "reaction.added"]
    assert added["reaction_counts"] == {"like": 1} and added["activity_id"] == post
    assert {g for g, e in got[fifo] if "type" in e} == {f"activity:{post}"}
    # The queue without `reactions` gets the activity's feed update, and nothing else.
    wait_until(lambda: drain(silent, got[silent]) or got[silent], 30, 0.01,
               what="the feed update in the queue without reactions")  # fmt: skip
    drain(silent, got[silent])
    assert all("feed" in e and "type" not in e for _, e in got[silent])


def test_a_reaction_event_is_stored_before_the_add_answers_and_a_retry_adds_no_other(
    store: Store, receivers: list[Receiver], nodes: list[ServerProcess], tmp_path: Path, uid: str
) -> None:
    hook = Receiver().start()
    receivers.append(hook)
    hook.status = 503  # the endpoint is down
    env = {**FAST, **webhooks((hook, []), reacting=(hook,))}
    node = ServerProcess(store.url, env=env, log_path=tmp_path / "node.log").start()
    nodes.append(node)
    messages = outbox(node, store)
    post = add(node, f"user:{uid}")
    reaction_id = str(uuid.uuid4())
    mentions = {"body": {"$regex": re.escape(f'"id":"{reaction_id}"')}}

    body = {"kind": "like", "activity_id": post, "user_id": uid, "id": reaction_id}
    call(node, "POST", "reaction/", json=body)
    assert messages.count_documents(mentions) == 1, "the add answered before its event was stored"
    again = attempt(node, "POST", "reaction/", json=body)
    assert again.status_code == 409, again.text  # the client's retry: the id is taken
    assert messages.count_documents(mentions) == 1, "the retried add stored another message"
    wait_until(lambda: any(s == 503 for _, s in hook.attempts), 15, what="a failed attempt")

    hook.status = 200  # the endpoint comes up: the stored event is delivered
    wait_until(lambda: ids_of(hook, reaction_id, "reaction.added"), 15, what="the delivery")
    wait_until(lambda: messages.count_documents(mentions) == 0, 15, what="the message settled")
    # Retried once more after its delivery: sent again under the same id (receivers drop it).
    assert attempt(node, "POST", "reaction/", json=body).status_code == 409
    wait_until(lambda: len(ids_of(hook, reaction_id, "reaction.added")) == 2, 15,
               what="the retry's message")  # fmt: skip
    assert len(set(ids_of(hook, reaction_id, "reaction.added"))) == 1
    # A retried soft delete (which finds it deleted) tells it again under the same id too.
    call(node, "DELETE", f"reaction/{reaction_id}/", params={"soft": "true"})
    wait_until(lambda: ids_of(hook, reaction_id, "reaction.deleted"), 15, what="the delete")
    wait_until(lambda: messages.count_documents(mentions) == 0, 15, what="the message settled")
    call(node, "DELETE", f"reaction/{reaction_id}/", params={"soft": "true"})
    wait_until(lambda: len(ids_of(hook, reaction_id, "reaction.deleted")) == 2, 15,
               what="the soft delete and its retry")  # fmt: skip
    assert len(set(ids_of(hook, reaction_id, "reaction.deleted"))) == 1
    # Another add of the same kind by someone else is a message of its own.
    other = react(node, post, f"{uid}-2")
    wait_until(lambda: ids_of(hook, other["id"], "reaction.added"), 15, what="another add")
    assert set(ids_of(hook, other["id"], "reaction.added")).isdisjoint(
        ids_of(hook, reaction_id, "reaction.added")
    )


def test_a_node_killed_between_a_reaction_write_and_its_event_loses_no_event(
    store: Store, receivers: list[Receiver], nodes: list[ServerProcess], tmp_path: Path, uid: str
) -> None:
    """Killed right after an add is stored: the client's retry (409) stores the event. Killed
    right after a hard delete: its event was written before, and another node sends it."""
    hook = Receiver().start()
    receivers.append(hook)
    env = {**FAST, **webhooks((hook, []), reacting=(hook,))}

    def started(name: str, fault: str | None = None) -> ServerProcess:
        armed = {**env, "TIDINGS_TEST_FAULT": fault} if fault else env
        database = nodes[0].database if nodes else None
        node = ServerProcess(store.url, database=database, env=armed,
                             log_path=tmp_path / f"{name}.log").start()  # fmt: skip
        nodes.append(node)
        return node

    first = started("first", "reactions.inserted")
    post = add(first, f"user:{uid}")
    reaction_id = str(uuid.uuid4())
    body = {"kind": "like", "activity_id": post, "user_id": uid, "id": reaction_id}
    with contextlib.suppress(requests.ConnectionError):
        attempt(first, "POST", "reaction/", json=body)
    assert first.process is not None and first.process.wait(20) == -9, "no fault"

    second = started("second", "reactions.deleted")
    retried = attempt(second, "POST", "reaction/", json=body)
    assert retried.status_code == 409, retried.text
    [added] = wait_until(lambda: events(hook, reaction_id, "reaction.added"), 15,
                         what="the add's event, stored by its retry")  # fmt: skip
    assert added["reaction_counts"] == {"like": 1}

    with contextlib.suppress(requests.ConnectionError):
        attempt(second, "DELETE", f"reaction/{reaction_id}/")
    assert second.process is not None and second.process.wait(20) == -9, "no fault"
    gone = attempt(started("third"), "GET", f"reaction/{reaction_id}/")
    assert gone.status_code == 404, gone.text  # the delete was done before the kill
    [deleted] = wait_until(lambda: events(hook, reaction_id, "reaction.deleted"), 30,
                           what="the hard delete's event, sent by another node")  # fmt: skip
    assert deleted["reaction_counts"] == {"like": 0} and deleted["activity_id"] == post
    assert hook.bad_signatures == 0
