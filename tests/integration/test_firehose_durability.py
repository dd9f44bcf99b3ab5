"""The firehose keeps what it promises at the edges: a removal that fails midway still announces
its `deleted`, a client's retried add keeps its message id, an update larger than an SQS queue
takes is split to fit it, and dead letters neither pile up nor are written for a disabled
endpoint.

Real things only: Tidings server processes, the webhook receiver of harness/webhooks.py,
moto's SQS in server mode, the CLI as a process.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pymongo
import pytest
import requests

from harness.sqs import AWS_ENV, MotoServer
from harness.webhooks import Receiver
from tests.integration.firehose_calls import FAST, HEADERS, add, call, cli, webhooks
from tests.support import API_KEY, ServerProcess, Store, wait_until

RAISING = "remove.after_entries:lose_answer,targets.after_drop:lose_answer"


def attempt(node: ServerProcess, method: str, path: str, **kw: Any) -> requests.Response:
    return requests.request(
        method, f"{node.url}/api/v1.0/{path}", params={"api_key": API_KEY}, headers=HEADERS,
        timeout=15, **kw,
    )  # fmt: skip


@pytest.fixture(scope="module")
def hooked(store: Store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
    tuple[ServerProcess, Receiver]
]:  # fmt: skip
    """A node whose removals and retargets fail (503) right after their entries are deleted,
    with a webhook receiver."""
    hook = Receiver().start()
    log = tmp_path_factory.mktemp("hooked") / "node.log"
    env = {**FAST, **webhooks((hook, [])), "TIDINGS_TEST_FAULT": RAISING}
    node = ServerProcess(store.url, env=env, log_path=log).start()
    yield node, hook
    node.kill()
    hook.stop()


def test_a_removal_failing_after_its_entries_went_still_sends_deleted(
    hooked: tuple[ServerProcess, Receiver], uid: str
) -> None:
    node, hook = hooked
    author, room = f"user:{uid}", f"raid:{uid}"
    aid = add(node, author, to=[room])
    wait_until(lambda: hook.pairs() >= {(author, aid), (room, aid)}, 15, what="the add")

    failed = attempt(node, "DELETE", f"feed/user/{uid}/{aid}/")
    assert failed.status_code == 503, failed.text
    retried = attempt(node, "DELETE", f"feed/user/{uid}/{aid}/")
    assert retried.status_code == 200, retried.text  # nothing left to remove
    assert call(node, "GET", f"feed/user/{uid}/").json()["results"] == []
    wait_until(lambda: hook.pairs(with_new=False) >= {(author, aid), (room, aid)}, 15,
               what="`deleted` of the origin and the `to` feed")  # fmt: skip


def test_a_retarget_failing_after_a_dropped_entry_still_sends_deleted(
    hooked: tuple[ServerProcess, Receiver], uid: str
) -> None:
    node, hook = hooked
    author, kept, dropped = f"user:{uid}", f"raid:{uid}-kept", f"raid:{uid}-dropped"
    when = "2026-03-01T10:00:00"
    aid = add(node, author, to=[kept, dropped], foreign_id=f"f:{uid}", time=when)
    wait_until(lambda: (dropped, aid) in hook.pairs(), 15, what="the add")

    body = {"foreign_id": f"f:{uid}", "time": when, "removed_targets": [dropped]}
    path = f"feed_targets/user/{uid}/activity_to_targets/"
    failed = attempt(node, "POST", path, json=body)
    assert failed.status_code == 503, failed.text
    retried = attempt(node, "POST", path, json=body)
    assert retried.status_code in (200, 201), retried.text
    assert call(node, "GET", f"feed/raid/{uid}-dropped/").json()["results"] == []
    wait_until(lambda: (dropped, aid) in hook.pairs(with_new=False), 15,
               what="`deleted` of the dropped target")  # fmt: skip
    assert (kept, aid) not in hook.pairs(with_new=False)


def test_a_retried_add_keeps_its_message_id_and_other_updates_get_their_own(
    hooked: tuple[ServerProcess, Receiver], uid: str
) -> None:
    node, hook = hooked
    author = f"user:{uid}"
    same = {"foreign_id": f"f:{uid}", "time": "2026-02-01T09:00:00"}

    def ids_of(activity: str, **match: Any) -> list[str]:
        return [
            d.id for d in list(hook.deliveries) for e in d.body if e["feed"] == author
            for a in e["new"] if a["id"] == activity and match.items() <= a.items()
        ]  # fmt: skip

    first = add(node, author, **same)
    wait_until(lambda: len(ids_of(first)) == 1, 15, what="the add")
    assert add(node, author, **same) == first  # the client's retry: the same activity
    wait_until(lambda: len(ids_of(first)) == 2, 15, what="the retried add")
    assert len(set(ids_of(first))) == 1, "the retried add was sent under a new webhook-id"

    call(node, "POST", "activity/", json={"id": first, "set": {"score": 1}})
    wait_until(lambda: ids_of(first, score=1), 15, what="the update")
    other = add(node, author, foreign_id=f"g:{uid}", time="2026-02-01T09:00:00")
    wait_until(lambda: ids_of(other), 15, what="another add")
    assert len({*ids_of(first), *ids_of(first, score=1), *ids_of(other)}) == 3


def test_an_update_back_to_earlier_fields_is_a_new_message(
    hooked: tuple[ServerProcess, Receiver], uid: str
) -> None:
    """The same words for a later state of the activity (a score set to 7, to 8, back to 7)
    are three updates: three webhook-ids, none of which a receiver may drop as a repeat."""
    node, hook = hooked
    author = f"user:{uid}"
    first = add(node, author, foreign_id=f"f:{uid}", time="2026-02-01T09:00:00")

    def sent(score: int) -> list[str]:
        return [
            d.id for d in list(hook.deliveries) for e in d.body if e["feed"] == author
            for a in e["new"] if a["id"] == first and a.get("score") == score
        ]  # fmt: skip

    for score, times in ((7, 1), (8, 1), (7, 2)):
        call(node, "POST", "activity/", json={"id": first, "set": {"score": score}})
        wait_until(lambda s=score, n=times: len(sent(s)) == n, 15, what=f"score {score}")
    assert len(set(sent(7))) == 2, "the update back to 7 was sent under the first one's id"
    assert not set(sent(7)) & set(sent(8))


def test_an_update_bigger_than_a_queue_takes_arrives_split_to_fit_each_queue(
    store: Store, moto: MotoServer, tmp_path: Path, uid: str
) -> None:
    sqs = boto3.client("sqs", endpoint_url=moto.url, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    limits = {f"plain-{uid}": 262144, f"fifo-{uid}.fifo": 65536, f"tiny-{uid}": 8192}
    urls = {}
    for name, limit in limits.items():
        attributes = {"MaximumMessageSize": str(limit)}
        if name.endswith(".fifo"):
            attributes["FifoQueue"] = "true"
        urls[name] = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    queues = [
        {"queue_url": u, "region": "us-east-1", "endpoint_url": moto.url} for u in urls.values()
    ]
    env = {**FAST, **AWS_ENV, "TIDINGS_FIREHOSE_SQS": json.dumps(queues)}
    node = ServerProcess(store.url, env=env, log_path=tmp_path / "node.log").start()
    try:
        author = f"user:{uid}"
        batch = [{"actor": "a", "verb": "post", "object": f"o:{n}", "text": "x" * 5000}
                 for n in range(100)]  # fmt: skip
        added = call(node, "POST", f"feed/user/{uid}/", json={"activities": batch}).json()
        wanted = {a["id"] for a in added["activities"]}
        assert len(json.dumps(batch)) > 500_000

        for name, url in urls.items():
            got: set[str] = set()
            sizes: list[int] = []

            def drain(url: str = url, got: set[str] = got, sizes: list[int] = sizes) -> bool:
                answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                             WaitTimeSeconds=1)  # fmt: skip
                for message in answer.get("Messages", []):
                    sizes.append(len(message["Body"].encode()))
                    got.update(a["id"] for e in json.loads(message["Body"]) for a in e["new"]
                               if e["feed"] == author)  # fmt: skip
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                return got >= wanted

            wait_until(drain, 30, 0.01, what=f"the whole batch in {name}")
            assert len(sizes) > 1 and max(sizes) <= limits[name], (name, sizes)

        # An activity that alone is more than the smallest queue takes (less what its
        # message adds to it: 1024 bytes) is refused as too large, and nothing is stored.
        one = {"actor": "a", "verb": "post", "object": "o:big", "text": "x" * 8000}
        big = attempt(node, "POST", f"feed/user/{uid}/", json=one)
        assert big.status_code == 413, big.text
        assert big.json()["exception"] == "InputException", big.text
        assert "more than the 7168 allowed" in big.json()["detail"], big.text
        stored = call(node, "GET", f"feed/user/{uid}/", params={"limit": "100"}).json()
        assert {a["id"] for a in stored["results"]} == wanted

    finally:
        node.kill()


def deliveries(node: ServerProcess, store: Store) -> pymongo.collection.Collection[Any]:
    client: pymongo.MongoClient[Any] = pymongo.MongoClient(store.url)
    return client[node.database]["deliveries"]


def test_dead_letters_older_than_the_retention_are_deleted(
    store: Store, tmp_path: Path, uid: str
) -> None:
    hook = Receiver().start()
    env = {**FAST, **webhooks((hook, [])), "TIDINGS_FIREHOSE_GIVE_UP_AFTER_SECONDS": "0",
           "TIDINGS_FIREHOSE_DEAD_RETENTION_DAYS": "0.00003"}  # 2.6 s  # fmt: skip
    node = ServerProcess(store.url, env=env, log_path=tmp_path / "node.log").start()
    try:
        hook.status = 503
        add(node, f"user:{uid}")
        outbox = deliveries(node, store)
        wait_until(lambda: outbox.count_documents({"state": "dead"}) == 1, 15,
                   what="the dead letter")  # fmt: skip
        wait_until(lambda: outbox.count_documents({}) == 0, 15, what="its deletion")
    finally:
        node.kill()
        hook.stop()


def test_a_disabled_endpoint_gets_nothing_written_until_enabled_and_purge_clears_dead(
    store: Store, tmp_path: Path, uid: str
) -> None:
    hook = Receiver().start()
    node = ServerProcess(store.url, env={**FAST, **webhooks((hook, []))},
                         log_path=tmp_path / "node.log").start()  # fmt: skip
    try:
        author = f"user:{uid}"
        outbox = deliveries(node, store)
        hook.status = 410
        add(node, author)
        wait_until(lambda: outbox.count_documents({"state": "dead"}) == 1, 15,
                   what="the 410's dead letter")  # fmt: skip
        for _ in range(3):
            add(node, author)  # not written at all: the endpoint is disabled
        assert outbox.count_documents({}) == 1

        def status() -> dict[str, Any]:
            return dict(json.loads(cli(node, "status", "--json").stdout)["endpoints"][0])

        wait_until(lambda: status()["skipped"] == 3, 15, what="the skipped updates counted")
        table = cli(node, "status").stdout
        assert "DISABLED (HTTP 410 Gone), 3 updates skipped" in table, table
        metrics = requests.get(node.url + "/metrics", timeout=5).text
        assert 'tidings_firehose_skipped_total{kind="webhook"} 3.0' in metrics

        assert cli(node, "purge").stdout.strip() == "purged 1 dead messages"
        assert outbox.count_documents({}) == 0 and status()["dead"] == 0
        assert cli(node, "purge").stdout.strip() == "purged 0 dead messages"

        hook.status = 200
        enabled = cli(node, "enable", "0").stdout.strip()
        assert enabled == "enabled endpoint 0 (3 updates were skipped while it was disabled)"
        assert status()["disabled"] is None
        sent: list[str] = []

        def delivered() -> bool:  # the node learns of it at its next poll
            sent.append(add(node, author))
            return any((author, a) in hook.pairs() for a in sent)

        wait_until(delivered, 15, 0.2, what="a delivery once enabled")
    finally:
        node.kill()
        hook.stop()


def test_firehose_cli_refuses_unknown_endpoints_and_bad_times(
    hooked: tuple[ServerProcess, Receiver],
) -> None:
    node, _ = hooked
    for argv, message in (
        (("enable", "7"), "tidings: no firehose endpoint 7 (there are 1)"),
        (("purge", "--endpoint", "7"), "tidings: no firehose endpoint 7 (there are 1)"),
        (("purge", "--before", "soon"), "tidings: --before: not an ISO-8601 time"),
    ):
        with pytest.raises(subprocess.CalledProcessError) as failed:
            cli(node, *argv)
        assert failed.value.returncode == 2
        assert failed.value.stderr.startswith(message), (argv, failed.value.stderr)
