"""The firehose: every feed update goes to webhooks and SQS queues, signed, once the
feed holds it, at least once through endpoint outages and a node's kill -9.

Real things only: Tidings server processes, a webhook receiver in this process that verifies
every signature with `standardwebhooks`, moto's SQS in server mode, the CLI as a process.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import boto3
import pymongo
import requests

from harness.common import SERVER_TOKEN
from harness.sqs import AWS_ENV, MotoServer
from harness.webhooks import Receiver
from tests.integration.firehose_calls import FAST, add, call, cli, follow, webhooks
from tests.support import ServerProcess, Store, wait_until

ELEMENT_KEYS = {"feed", "new", "deleted", "deleted_foreign_ids", "published_at"}


def test_every_update_reaches_the_webhooks_signed_once_the_feed_holds_it(
    store: Store, receivers: list[Receiver], nodes: list[ServerProcess], tmp_path: Path, uid: str
) -> None:
    every, timelines = Receiver().start(), Receiver().start()
    receivers += [every, timelines]
    env = {**FAST, **webhooks((every, []), (timelines, ["timeline"]))}
    node = ServerProcess(store.url, env=env, log_path=tmp_path / "node.log").start()
    nodes.append(node)
    every.check = (node.url, SERVER_TOKEN)
    author, room = f"user:{uid}", f"raid:{uid}"
    followers = [f"timeline:{uid}-{i}" for i in range(3)]
    follow(node, followers, author)

    first = add(node, author)
    second = add(node, author, to=[room], foreign_id="f:2", time="2026-01-01T00:00:00")
    added = {(f, a) for f in [author, *followers] for a in (first, second)} | {(room, second)}
    wait_until(lambda: every.pairs() >= added, 20, what="every (feed, activity) at the webhook")
    wait_until(lambda: timelines.pairs() >= {p for p in added if p[0].startswith("timeline:")})
    assert every.bad_signatures == timelines.bad_signatures == 0
    assert all(d.held for d in every.deliveries), "a webhook came before its feed held it"
    assert not {f for f, _ in timelines.pairs()} - set(followers), "feed_groups let others by"
    for delivery in every.deliveries:
        assert delivery.body and all(set(e) == ELEMENT_KEYS for e in delivery.body)
    # A fanout to 3 followers is one message (one element per feed), not 3.
    fanned = [d for d in every.deliveries if any(e["feed"] in followers for e in d.body)]
    assert len(fanned) == 2 and all(len(d.body) == 3 for d in fanned)

    # An update reaches every feed holding the activity, in `new`, with the same id.
    call(node, "POST", "activity/", json={"id": first, "set": {"score": 7}})

    def updated() -> set[str]:
        return {e["feed"] for d in every.deliveries for e in d.body
                for a in e["new"] if a["id"] == first and a.get("score") == 7}  # fmt: skip

    wait_until(lambda: updated() >= {author, *followers}, 20, what="the update")

    # A removal goes out the same way: `deleted` (and `deleted_foreign_ids`) for every feed.
    call(node, "DELETE", f"feed/user/{uid}/{second}/")
    removed = {(f, second) for f in [author, room, *followers]}
    wait_until(lambda: every.pairs(with_new=False) >= removed, 20, what="the removal")
    foreign = {
        e["feed"] for d in every.deliveries for e in d.body if "f:2" in e["deleted_foreign_ids"]
    }
    assert foreign >= {author, *followers}
    ids = [d.id for d in every.deliveries]
    assert len(ids) == len(set(ids)), "a healthy endpoint got a message twice"


def test_a_pull_feeds_update_goes_out_once_for_the_pull_feed(
    store: Store, receivers: list[Receiver], nodes: list[ServerProcess], tmp_path: Path, uid: str
) -> None:
    """A feed with more followers than fanout.pull_threshold is merged into its followers at
    read time: its update goes out once, for itself (as to sockets: one room), not per
    follower, and only once it holds the activity."""
    hook = Receiver().start()
    receivers.append(hook)
    env = {**FAST, **webhooks((hook, [])), "TIDINGS_FANOUT_PULL_THRESHOLD": "3",
           "TIDINGS_FANOUT_PUSH_THRESHOLD": "2"}  # fmt: skip
    node = ServerProcess(store.url, env=env, log_path=tmp_path / "node.log").start()
    nodes.append(node)
    hook.check = (node.url, SERVER_TOKEN)
    celeb, followers = f"user:{uid}", [f"timeline:{uid}-{i}" for i in range(4)]
    follow(node, followers, celeb)
    with pymongo.MongoClient(store.url) as client:
        feeds = client[node.database]["feeds"]
        wait_until(lambda: (feeds.find_one({"_id": celeb}) or {}).get("mode") == "pull", 20,
                   what="the switch to pull")  # fmt: skip
    pulled = add(node, celeb)
    wait_until(lambda: (celeb, pulled) in hook.pairs(), 20, what="the pull feed's update")
    assert all(d.held for d in hook.deliveries)
    [feed] = call(node, "GET", f"feed/timeline/{uid}-0/").json()["results"]
    assert feed["id"] == pulled  # merged in at read time
    assert not {f for f, a in hook.pairs() if a == pulled} - {celeb}


def test_an_outage_is_retried_with_the_same_id_and_a_410_disables_until_enabled(
    store: Store, receivers: list[Receiver], nodes: list[ServerProcess], tmp_path: Path, uid: str
) -> None:
    hook = Receiver().start()
    receivers.append(hook)
    node = ServerProcess(store.url, env={**FAST, **webhooks((hook, []))},
                         log_path=tmp_path / "node.log").start()  # fmt: skip
    nodes.append(node)
    author, followers = f"user:{uid}", [f"timeline:{uid}-{i}" for i in range(2)]
    follow(node, followers, author)

    hook.status = 503
    first = add(node, author)

    def retried() -> bool:
        failed = [i for i, status in hook.attempts if status == 503]
        return len(failed) > len(set(failed)) >= 2  # each message, then again: the same id

    wait_until(retried, 20, what="retries of the failed messages")
    assert requests.get(node.url + "/readyz", timeout=5).status_code == 200
    hook.status = 200
    wanted = {(f, first) for f in [author, *followers]}
    wait_until(lambda: hook.pairs() >= wanted, 20, what="delivery once the endpoint is back")
    failed_ids = {i for i, status in hook.attempts if status == 503}
    assert failed_ids <= {d.id for d in hook.deliveries}, "webhook-id changed across retries"

    hook.status = 410
    gone = add(node, author)
    wait_until(lambda: any(s == 410 for _, s in hook.attempts), 20, what="the 410")
    status = json.loads(cli(node, "status", "--json").stdout)["endpoints"][0]
    assert status["disabled"] is not None, status
    hook.status = 200
    while_off = add(node, author)  # not written while the endpoint is disabled: skipped
    wait_until(
        lambda: json.loads(cli(node, "status", "--json").stdout)["endpoints"][0]["skipped"] >= 3,
        20, what="the updates skipped while the endpoint is disabled",
    )  # fmt: skip
    assert not hook.pairs() & {(author, gone), (author, while_off)}
    assert "replayed" in cli(node, "replay", "--endpoint", "0").stdout
    wait_until(lambda: (author, gone) in hook.pairs(), 20, what="the replayed dead letter")
    metrics = requests.get(node.url + "/metrics", timeout=5).text
    for name in ("retried", "dead", "delivered", "disabled", "skipped"):
        assert f'tidings_firehose_{name}_total{{kind="webhook"}}' in metrics, name
    assert "tidings_firehose_latency_seconds_bucket" in metrics


def test_kill_9_with_deliveries_in_flight_another_node_delivers_them_all(
    store: Store, receivers: list[Receiver], nodes: list[ServerProcess], tmp_path: Path, uid: str
) -> None:
    hook = Receiver().start()
    receivers.append(hook)
    env = {**FAST, **webhooks((hook, [])), "TIDINGS_FIREHOSE_TIMEOUT_SECONDS": "60"}
    doomed = ServerProcess(store.url, env=env, log_path=tmp_path / "doomed.log").start()
    nodes.append(doomed)
    author, followers = f"user:{uid}", [f"timeline:{uid}-{i}" for i in range(3)]
    follow(doomed, followers, author)

    hook.status = 0  # hold every request open: the messages are in flight, leased to `doomed`
    first, second = add(doomed, author), add(doomed, author)
    wait_until(lambda: hook.hanging >= 2, 20, what="deliveries in flight")
    doomed.kill()
    hook.status = 200
    other = ServerProcess(store.url, database=doomed.database, env=env,
                          log_path=tmp_path / "other.log").start()  # fmt: skip
    nodes.append(other)
    wanted = {(f, a) for f in [author, *followers] for a in (first, second)}
    wait_until(lambda: hook.pairs() >= wanted, 30, what="the other node to deliver them all")
    assert hook.bad_signatures == 0


def test_a_fanout_batch_run_again_after_a_kill_writes_the_same_message(
    store: Store, receivers: list[Receiver], nodes: list[ServerProcess], tmp_path: Path, uid: str
) -> None:
    """The node dies (fault point) right after a fanout batch's message is stored, before the
    job's cursor moves: the job's takeover runs the batch again, which finds its message (the
    same id) instead of adding one; the message is delivered (maybe twice: with one id)."""
    hook = Receiver().start()
    receivers.append(hook)
    env = {**FAST, **webhooks((hook, []))}
    armed = ServerProcess(store.url, env={**env, "TIDINGS_TEST_FAULT": "fanout.batch_handed_over"},
                          log_path=tmp_path / "armed.log").start()  # fmt: skip
    nodes.append(armed)
    author, followers = f"user:{uid}", [f"timeline:{uid}-{i}" for i in range(3)]
    follow(armed, followers, author)
    # It may die before answering: the activity is stored before its fanout begins.
    with contextlib.suppress(requests.ConnectionError):
        add(armed, author)
    assert armed.process is not None and armed.process.wait(20) == -9, "no fault"
    other = ServerProcess(store.url, database=armed.database, env=env,
                          log_path=tmp_path / "other.log").start()  # fmt: skip
    nodes.append(other)
    [stored] = call(other, "GET", f"feed/user/{uid}/").json()["results"]
    wanted = {(f, stored["id"]) for f in [author, *followers]}
    wait_until(lambda: hook.pairs() >= wanted, 30, what="the stored messages")

    def fanned() -> list[str]:
        return [d.id for d in hook.deliveries if any(e["feed"] in followers for e in d.body)]

    # The job's takeover runs the batch again: its message was delivered by then (the
    # firehose's lease is the shorter), so the batch writes it anew, with the same id.
    wait_until(lambda: resumed_batches(other) >= 1, 30, what="the fanout job's takeover")
    wait_until(lambda: len(fanned()) >= 2, 20, what="the batch's message, sent again")
    assert len(set(fanned())) == 1, f"the batch run again wrote a new message: {fanned()}"


def resumed_batches(node: ServerProcess) -> float:
    metrics = requests.get(node.url + "/metrics", timeout=5).text
    for line in metrics.splitlines():
        if line.startswith('tidings_fanout_batches_total{kind="add"}'):
            return float(line.rpartition(" ")[2])
    return 0.0


def test_sqs_queues_get_the_same_updates_fifo_in_order_per_feed(
    store: Store, moto: MotoServer, nodes: list[ServerProcess], tmp_path: Path, uid: str
) -> None:
    sqs = boto3.client("sqs", endpoint_url=moto.url, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    plain = sqs.create_queue(QueueName=f"plain-{uid}")["QueueUrl"]
    fifo = sqs.create_queue(QueueName=f"fifo-{uid}.fifo", Attributes={"FifoQueue": "true"})[
        "QueueUrl"
    ]
    queues = [
        {"queue_url": q, "region": "us-east-1", "endpoint_url": moto.url} for q in (plain, fifo)
    ]
    env = {**FAST, **AWS_ENV, "TIDINGS_FIREHOSE_SQS": json.dumps(queues)}
    node = ServerProcess(store.url, env=env, log_path=tmp_path / "node.log").start()
    nodes.append(node)
    author, followers = f"user:{uid}", [f"timeline:{uid}-{i}" for i in range(2)]
    follow(node, followers, author)
    added = [add(node, author) for _ in range(3)]
    wanted = {(f, a) for f in [author, *followers] for a in added}

    def drain(url: str, into: list[tuple[str | None, dict[str, Any]]]) -> None:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                  AttributeNames=["MessageGroupId"])  # fmt: skip
        for message in got.get("Messages", []):
            group = message.get("Attributes", {}).get("MessageGroupId")
            into += [(group, e) for e in json.loads(message["Body"])]
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    def seen(into: list[tuple[str | None, dict[str, Any]]]) -> set[tuple[str, str]]:
        return {(e["feed"], a["id"]) for _, e in into for a in e["new"]}

    from_plain: list[tuple[str | None, dict[str, Any]]] = []
    from_fifo: list[tuple[str | None, dict[str, Any]]] = []
    wait_until(lambda: drain(plain, from_plain) or seen(from_plain) >= wanted, 30, 0.01,
               what="the standard queue to get every update")  # fmt: skip
    wait_until(lambda: drain(fifo, from_fifo) or seen(from_fifo) >= wanted, 30, 0.01,
               what="the FIFO queue to get every update")  # fmt: skip
    assert all(group == e["feed"] for group, e in from_fifo), "group id is not the feed"
    order = [a["id"] for _, e in from_fifo if e["feed"] == author for a in e["new"]]
    assert order == added, "the FIFO queue lost the order of the feed's updates"
