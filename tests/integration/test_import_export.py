"""`tidings import` and `tidings export` as an operator runs them, against the session's store
and a server reading the same database."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import stream
from pymongo import MongoClient

from harness.server import DATABASES, ServerProcess, Spawn
from harness.store import Store
from tests.integration.test_cli import clean_env, run_cli
from tests.support import API_SECRET, ROOT, wait_until

Doc = dict[str, Any]
TIMEOUT = 60.0


def cli_env(store: Store, database: str, **extra: str) -> dict[str, str]:
    return clean_env(
        TIDINGS_MONGODB_URL=store.url, TIDINGS_MONGODB_DATABASE=database,
        TIDINGS_AUTH_API_SECRET=API_SECRET, **extra,
    )  # fmt: skip


def write(path: Path, records: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def import_json(path: Path, env: dict[str, str], *flags: str) -> tuple[int, dict[str, Any]]:
    done = run_cli("import", str(path), "--json", *flags, env=env)
    assert done.returncode in (0, 1), done.stderr
    report: list[dict[str, Any]] = json.loads(done.stdout)
    return done.returncode, report[0]


def app_records(uid: str, count: int = 5) -> list[dict[str, Any]]:
    """A small app: a user, a collection entry, `count` activities of user:<uid>a (one also
    to notification:<uid>c), timeline:<uid>b following it, a like and its reply."""
    first = f"aaaaaaaa-0000-1000-8000-{uid[:10]:0>12}"  # a source's (Stream's) own id
    records: list[dict[str, Any]] = [
        {"type": "user", "user": {"id": f"{uid}a", "data": {"name": "Alice"}}},
        {"type": "collection", "collection": {"collection": "food", "id": uid,
                                              "data": {"name": "soup"}}},
    ]  # fmt: skip
    for n in range(count):
        activity: dict[str, Any] = {
            "actor": f"SU:{uid}a", "verb": "post", "object": f"post:{n}",
            "foreign_id": f"post:{uid}:{n}", "time": f"2024-01-0{n % 9 + 1}T10:00:00.{n:06d}",
            "origin": None, "target": "", "tags": ["x", n],
        }  # fmt: skip
        if n == 0:
            activity["id"] = first
            activity["to"] = [f"notification:{uid}c"]
        records.append({"type": "activity", "feed": f"user:{uid}a", "activity": activity})
    like = str(uuid.uuid4())
    records += [
        {"type": "follow", "follow": {"feed_id": f"timeline:{uid}b", "target_id": f"user:{uid}a"}},
        {"type": "reaction", "reaction": {"id": like, "kind": "like", "activity_id": first,
                                          "user_id": f"{uid}b", "data": {}}},
        {"type": "reaction", "reaction": {"id": str(uuid.uuid4()), "kind": "reply",
                                          "parent": like, "user_id": f"{uid}a",
                                          "data": {"text": "thanks"}}},
    ]  # fmt: skip
    return records


def feed_ids(client: stream.client.StreamClient, group: str, user: str) -> list[str]:
    return [a["foreign_id"] for a in client.feed(group, user).get(limit=100)["results"]]


def counts(mongo: MongoClient[Doc], database: str, foreign_id: str) -> dict[str, int]:
    db = mongo[database]
    activity = db["activities"].find_one({"foreign_id": foreign_id})
    assert activity is not None
    doc = db["reaction_counts"].find_one({"_id": activity["_id"]}) or {}
    return dict(doc.get("counts", {}))


def test_import_is_visible_over_rest(
    server: ServerProcess, store: Store, client: stream.client.StreamClient, uid: str,
    tmp_path: Path, mongo: MongoClient[Doc],
) -> None:  # fmt: skip
    path = write(tmp_path / "app.ndjson", app_records(uid))
    code, report = import_json(path, cli_env(store, server.database))
    assert code == 0, report
    assert report["imported"] == {
        "user": 1, "collection": 1, "activity": 5, "follow": 1, "reaction": 2
    }  # fmt: skip
    assert report["refused"] == 0
    posts = [f"post:{uid}:{n}" for n in (4, 3, 2, 1, 0)]  # newest first
    assert feed_ids(client, "user", f"{uid}a") == posts
    assert feed_ids(client, "timeline", f"{uid}b") == posts  # the follow's copies
    notified = client.feed("notification", f"{uid}c").get()["results"]
    assert [a["foreign_id"] for g in notified for a in g["activities"]] == [posts[-1]]
    assert client.users.get(f"{uid}a")["data"] == {"name": "Alice"}
    assert client.collections.get("food", uid)["data"] == {"name": "soup"}
    read = client.feed("user", f"{uid}a").get(limit=100, enrich=True, reactions={"counts": True})
    oldest = read["results"][-1]
    assert oldest["tags"] == ["x", 0]
    assert oldest["reaction_counts"] == {"like": 1}  # by the id here, not the source's
    like = client.reactions.filter(activity_id=oldest["id"], kind="like")["results"]
    assert [r["children_counts"] for r in like] == [{"reply": 1}]


def test_bad_lines_are_refused_with_a_summary_and_nothing_stored(
    server: ServerProcess, store: Store, client: stream.client.StreamClient, uid: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    good = app_records(uid, count=2)
    feed = f"user:{uid}a"
    bad: list[Any] = [
        "{not json",
        {"type": "planet", "planet": {}},
        {"type": "activity", "feed": feed, "activity": {"verb": "post", "object": "x",
                                                         "foreign_id": f"bad:{uid}",
                                                         "time": "2024-01-01T00:00:00"}},
        {"type": "activity", "feed": "nogroup:x", "activity": {"actor": "a", "verb": "v",
                                                               "object": "o",
                                                               "time": "2024-01-01T00:00:00"}},
        {"type": "follow", "follow": {"feed_id": feed, "target_id": feed}},
        {"type": "reaction", "reaction": {"id": str(uuid.uuid4()), "kind": "like",
                                          "activity_id": str(uuid.uuid4()), "user_id": "u"}},
        {"type": "user", "user": {"id": "not an id!"}},
    ]  # fmt: skip
    path = write(tmp_path / "mixed.ndjson", good[:3] + bad + good[3:])
    code, report = import_json(path, cli_env(store, server.database))
    assert code == 1
    assert report["refused"] == len(bad)
    assert report["imported"]["activity"] == 2
    refusals = report["refusals"]
    assert [r["line"] for r in refusals] == list(range(4, 4 + len(bad)))
    assert [r["type"] for r in refusals] == [
        None, "planet", "activity", "activity", "follow", "reaction", "user"
    ]  # fmt: skip
    for refusal in refusals:  # Stream's error body
        assert {"code", "detail", "exception", "status_code"} <= refusal["error"].keys()
    assert refusals[2]["error"]["exception"] == "InputException"
    assert "activity.actor" in refusals[2]["error"]["exception_fields"]
    assert refusals[5]["error"]["exception"] == "DoesNotExistException"
    saved = (tmp_path / "mixed.ndjson.refused").read_text().splitlines()
    assert [json.loads(line) for line in saved] == refusals
    assert feed_ids(client, "user", f"{uid}a") == [f"post:{uid}:1", f"post:{uid}:0"]
    assert client.feed("user", f"{uid}a").following()["results"] == []


def test_a_rerun_imports_nothing_twice(
    server: ServerProcess, store: Store, client: stream.client.StreamClient, uid: str,
    tmp_path: Path, mongo: MongoClient[Doc],
) -> None:  # fmt: skip
    path = write(tmp_path / "app.ndjson", app_records(uid))
    env = cli_env(store, server.database)
    assert import_json(path, env)[0] == 0
    code, again = import_json(path, env)  # the checkpoint says it is done
    assert code == 0 and again["resumed_at"] == again["lines"] == 10
    code, anew = import_json(path, env, "--restart")  # from the first line: all there
    assert code == 0 and anew["resumed_at"] == 0
    assert anew["imported"] == {}
    assert anew["existing"] == {
        "user": 1, "collection": 1, "activity": 5, "follow": 1, "reaction": 2
    }  # fmt: skip
    assert len(feed_ids(client, "user", f"{uid}a")) == 5
    assert len(feed_ids(client, "timeline", f"{uid}b")) == 5
    assert counts(mongo, server.database, f"post:{uid}:0") == {"like": 1}


def test_killed_mid_import_resumes_and_stores_each_line_once(
    server: ServerProcess, store: Store, client: stream.client.StreamClient, uid: str,
    tmp_path: Path, mongo: MongoClient[Doc],
) -> None:  # fmt: skip
    records: list[Any] = app_records(uid, count=12)
    records.insert(9, "{a refused line in the second chunk")
    path = write(tmp_path / "app.ndjson", records)  # 18 lines: chunks of 5
    holds = tmp_path / "holds"
    holds.mkdir()
    env = cli_env(store, server.database, TIDINGS_TEST_FAULT="import.written:hold",
                  TIDINGS_TEST_HOLD_DIR=str(holds))  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "tidings", "import", str(path), "--batch", "5", "--json"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_until(lambda: (holds / "import.written.1.held").exists(), TIMEOUT, 0.05)
        (holds / "import.written.1.release").touch()  # chunk 1 checkpointed
        wait_until(lambda: (holds / "import.written.2.held").exists(), TIMEOUT, 0.05)
    finally:
        process.kill()  # kill -9 with chunk 2 written and not checkpointed
        process.wait(10)
    point = json.loads((tmp_path / "app.ndjson.checkpoint").read_text())
    assert point["lines"] == 5
    code, report = import_json(path, cli_env(store, server.database), "--batch", "5")
    assert code == 1  # the refused line
    assert report["resumed_at"] == 5 and report["lines"] == 18
    assert report["refused"] == 1 and [r["line"] for r in report["refusals"]] == [10]
    assert report["imported"].get("activity", 0) + report["existing"].get("activity", 0) == 12
    assert report["imported"].get("reaction", 0) + report["existing"].get("reaction", 0) == 2
    assert len(feed_ids(client, "user", f"{uid}a")) == 12
    assert len(feed_ids(client, "timeline", f"{uid}b")) == 12
    assert counts(mongo, server.database, f"post:{uid}:0") == {"like": 1}
    assert mongo[server.database]["users"].count_documents({"_id": f"{uid}a"}) == 1


def _normalised(path: Path) -> list[str]:
    """Records of an export, follows without their times (a follow made by an import is
    dated then), in a canonical order."""
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for record in records:
        if record["type"] == "follow":
            del record["follow"]["created_at"], record["follow"]["updated_at"]
    return sorted(json.dumps(r, sort_keys=True) for r in records)


def test_export_then_import_into_an_empty_store_gives_the_same_data(
    spawn: Spawn, store: Store, uid: str, tmp_path: Path, mongo: MongoClient[Doc]
) -> None:
    node = spawn({})
    client = stream.connect(
        node.env["TIDINGS_AUTH_API_KEY"], API_SECRET, base_url=node.base_url, timeout=10
    )
    records = app_records(uid)
    gone = str(uuid.uuid4())  # a like deleted after a reply to it
    first = records[2]["activity"]["id"]
    records += [
        {"type": "reaction", "reaction": {"id": gone, "kind": "like", "activity_id": first,
                                          "user_id": "z", "deleted_at": "2024-02-01T00:00:00Z"}},
        {"type": "reaction", "reaction": {"id": str(uuid.uuid4()), "kind": "reply",
                                          "parent": gone, "user_id": "y"}},
    ]  # fmt: skip
    path = write(tmp_path / "app.ndjson", records)
    assert import_json(path, cli_env(store, node.database))[0] == 0
    # and what the API writes beside it: a follow's fanout, a `to`, a later post
    client.feed("timeline", f"{uid}b").follow("user", f"{uid}d")
    client.feed("user", f"{uid}d").add_activity(
        {"actor": "d", "verb": "post", "object": "o", "to": [f"notification:{uid}a"]}
    )
    first, second = tmp_path / "first.ndjson", tmp_path / "second.ndjson"
    done = run_cli("export", "-o", str(first), env=cli_env(store, node.database))
    assert done.returncode == 0, done.stderr
    empty = f"t_{uuid.uuid4().hex[:12]}"
    DATABASES.add(empty)
    try:
        assert import_json(first, cli_env(store, empty))[0] == 0
        done = run_cli("export", "-o", str(second), env=cli_env(store, empty))
        assert done.returncode == 0, done.stderr
        kinds = {json.loads(r)["type"] for r in _normalised(first)}
        assert kinds == {"user", "collection", "activity", "follow", "reaction"}
        assert _normalised(second) == _normalised(first)
    finally:
        mongo.drop_database(empty)


def test_imported_follows_store_what_the_api_follows_store(
    server: ServerProcess, store: Store, client: stream.client.StreamClient, uid: str,
    tmp_path: Path, mongo: MongoClient[Doc],
) -> None:  # fmt: skip
    """timeline:<uid>b follows three feeds through the API, one REST follow each;
    timeline:<uid>c follows the same feeds through an import (its bulk follow path): both hold
    the same entries, follows and counters, and an activity added afterwards reaches both."""
    sizes = {f"{uid}a": 12, f"{uid}e": 3, f"{uid}n": 0}  # more than the copy limit, fewer, none
    records: list[Any] = [
        {"type": "activity", "feed": f"user:{user}", "activity": {
            "actor": user, "verb": "post", "object": f"post:{n}", "foreign_id": f"{user}:{n}",
            "time": f"2024-03-01T10:{n:02d}:00"}}
        for user, count in sizes.items() for n in range(count)
    ]  # fmt: skip
    env = cli_env(store, server.database)
    assert import_json(write(tmp_path / "activities.ndjson", records), env)[0] == 0
    for user in sizes:
        client.feed("timeline", f"{uid}b").follow("user", user, activity_copy_limit=5)
    follows = [
        {"type": "follow", "follow": {"feed_id": f"timeline:{uid}c", "target_id": f"user:{user}",
                                      "activity_copy_limit": 5}}
        for user in sizes
    ]  # fmt: skip
    code, report = import_json(write(tmp_path / "follows.ndjson", follows), env)
    assert code == 0 and report["imported"] == {"follow": 3}, report
    db = mongo[server.database]

    def held(user: str) -> dict[str, Any]:
        feed = client.feed("timeline", user)
        return {
            "read": [(a["id"], a.get("origin")) for a in feed.get(limit=100)["results"]],
            "following": sorted(f["target_id"] for f in feed.following(limit=10)["results"]),
            "entries": sorted(
                (d["activity_id"], d["origin"], d.get("pulled"))
                for d in db["feed_entries"].find({"feed": f"timeline:{user}"})
            ),
            "follows": sorted(
                (d["target"], d["frontier"], d["period"], "pull_source" in d)
                for d in db["follows"].find({"source": f"timeline:{user}"})
            ),
        }

    api, imported = held(f"{uid}b"), held(f"{uid}c")
    assert len(api["read"]) == 5 + 3  # the newest 5 of a, the 3 of e
    assert imported == api
    for user, count in sizes.items():
        meta = db["feeds"].find_one({"_id": f"user:{user}"})
        assert meta is not None and meta["followers"] == 2 and meta["slots"] == 2
        newest = client.feed("user", user).get(limit=1)["results"]
        assert meta.get("max_id", "") == (newest[0]["id"] if count else "")
        assert db["follower_chunks"].count_documents({"target": f"user:{user}"}) == 1
    client.feed("user", f"{uid}a").add_activity({"actor": "a", "verb": "post", "object": "new"})
    wait_until(lambda: held(f"{uid}b")["read"] == held(f"{uid}c")["read"] != api["read"], TIMEOUT)
