"""The client on one node: REST calls, callbacks, `async for`, storage across app restarts,
refused subscriptions."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from client_helpers import API_KEY, App, post, until, user_token, writer

from tests.support import ServerProcess
from tidings_client import JSONFileStorage, Tidings, TidingsError

pytestmark = pytest.mark.timeout(30)


async def test_rest_calls_and_a_live_subscription(server: ServerProcess, uid: str) -> None:
    states: list[str] = []
    async with (
        writer(server.url) as backend,
        Tidings(server.url, API_KEY, token=user_token(uid)) as client,
    ):
        client.on("state", states.append)
        timeline, author = client.feed(f"timeline:{uid}"), f"user:{uid}"
        await backend.feed(timeline.id).follow(author, activity_copy_limit=0)
        assert (await backend.feed(f"timeline:{uid}").get())["results"] == []
        app = App()
        subscription = await timeline.subscribe(app.on_activity, **app.callbacks())
        assert states == ["connecting", "connected"]
        mine = await client.feed(author).add_activity({"actor": uid, "verb": "say", "object": "hi"})
        ids = [mine["id"], *await post(backend, author, 3)]
        await until(lambda: app.ids == ids, "the four activities, live, in order")
        await backend.rest.call("POST", "activity/", {"id": ids[1], "set": {"score": 7}})
        await until(lambda: app.updated, "on_update for a changed activity")
        assert [(a["id"], a["score"]) for a in app.updated] == [(ids[1], 7)]
        page = await timeline.get(limit=2)
        assert [a["id"] for a in page["results"]] == ids[::-1][:2] and page["next"]
        assert (await client.feed(author).remove_activity(ids[0]))["removed"] == ids[0]
        await until(lambda: app.removed == [ids[0]], "on_removed")
        assert subscription.last_id == ids[-1]
        received: list[str] = []  # the feeds of what this client's socket gets from now on
        route = client.connection.on_update
        assert route is not None
        client.connection.on_update = lambda event: (received.append(event["feed"]), route(event))
        await subscription.unsubscribe()
        # Posted to the timeline itself: a socket still subscribed to it gets it; then a marker
        # on another subscription of this client: its socket's events come in order, so what
        # the timeline sent it would have come before the marker.
        watcher, markers = App(), App()
        await backend.feed(timeline.id).subscribe(watcher.on_activity)
        await client.feed(author).subscribe(markers.on_activity)
        late = await post(backend, timeline.id, 1, "late")
        await until(lambda: watcher.ids == late, "the timeline's event, on another socket")
        marker = await post(backend, author, 1, "marker")
        await until(lambda: markers.ids == marker, "the marker")
        assert received == [author] and len(app.got) == 4 and not app.errors
    assert states[-1] == "disconnected"


async def test_async_for_yields_each_activity_once_and_ends_the_subscription(
    server: ServerProcess, uid: str
) -> None:
    feed = f"user:{uid}"
    async with (
        writer(server.url) as backend,
        Tidings(server.url, API_KEY, get_token=lambda: user_token(uid)) as client,
    ):
        stream = client.feed(feed).stream()
        posted: list[str] = []

        async def poster() -> None:
            await until(lambda: client._subscriptions and client._subscriptions[0].recoveries,
                        "the subscription")  # fmt: skip
            posted.extend(await post(backend, feed, 3))

        task = asyncio.create_task(poster())
        seen = []
        async for activity in stream:
            seen.append(activity["id"])
            if len(seen) == 3:
                break
        await stream.aclose()
        await task
        assert seen == posted
        assert not client._subscriptions


async def test_the_last_id_survives_an_app_restart_in_a_json_file(
    server: ServerProcess, uid: str, tmp_path: Path
) -> None:
    feed, path = f"user:{uid}", tmp_path / "last.json"
    async with writer(server.url) as backend:
        async with Tidings(server.url, API_KEY, token=user_token(uid),
                           storage=JSONFileStorage(path)) as first:  # fmt: skip
            app = App()
            await first.feed(feed).subscribe(app.on_activity)
            before = await post(backend, feed, 2)
            await until(lambda: app.ids == before, "two live activities")
        while_closed = await post(backend, feed, 4)  # the app is not running
        async with Tidings(server.url, API_KEY, token=user_token(uid),
                           storage=JSONFileStorage(path)) as second:  # fmt: skip
            again = App()
            await second.feed(feed).subscribe(again.on_activity)
            assert again.ids == while_closed  # delivered before subscribe returned
            later = await post(backend, feed, 1)
            await until(lambda: again.ids == while_closed + later, "the next one, live")


class SlowStorage(JSONFileStorage):
    """A storage whose writes take a while (a slow disk, AsyncStorage on a busy phone)."""

    async def set(self, key: str, value: str) -> None:
        await asyncio.sleep(0.3)
        await super().set(key, value)


async def test_a_close_during_the_write_of_the_last_id_keeps_what_was_handed_over(
    server: ServerProcess, uid: str, tmp_path: Path
) -> None:
    """The app got an activity and closes while its position is being written: the next start
    of the app hands over only what came after, nothing twice."""
    feed, path = f"user:{uid}", tmp_path / "last.json"
    async with writer(server.url) as backend:
        async with Tidings(server.url, API_KEY, token=user_token(uid),
                           storage=SlowStorage(path)) as first:  # fmt: skip
            app = App()
            await first.feed(feed).subscribe(app.on_activity)
            handed = await post(backend, feed, 1)
            await until(lambda: app.ids == handed, "the live activity")
        later = await post(backend, feed, 2)
        async with Tidings(server.url, API_KEY, token=user_token(uid),
                           storage=JSONFileStorage(path)) as second:  # fmt: skip
            again = App()
            await second.feed(feed).subscribe(again.on_activity)
            assert again.ids == later


async def test_a_refused_subscribe_raises_and_leaves_nothing_behind(
    server: ServerProcess, uid: str
) -> None:
    async with Tidings(server.url, API_KEY, token=user_token(uid)) as client:
        with pytest.raises(TidingsError) as refused:
            await client.feed(f"user:{uid}x").subscribe(App().on_activity)  # not theirs to read
        assert refused.value.code in (17, 3) and not client._subscriptions
        with pytest.raises(ValueError):
            client.feed("no-colon")
        with pytest.raises(TidingsError) as rest:
            await client.feed(f"user:{uid}x").add_activity(
                {"actor": "a", "verb": "b", "object": "c"}
            )
        assert rest.value.status == 403 and rest.value.exception == "NotAllowedException"
