"""Tokens that expire (refreshed before `exp`, and on `token.expired`), and raid rooms
(presence and publish over the socket)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from client_helpers import API_KEY, App, post, until, user_token, writer

from tests.support import ServerProcess
from tidings_client import Tidings, TidingsError

pytestmark = pytest.mark.timeout(30)


async def test_get_token_is_called_before_exp_and_the_socket_stays(
    server: ServerProcess, uid: str
) -> None:
    feed = f"user:{uid}"
    issued: list[str] = []

    async def get_token() -> str:
        issued.append(user_token(uid, ttl=3))
        return issued[-1]

    async with (
        writer(server.url) as backend,
        Tidings(server.url, API_KEY, get_token=get_token, refresh_ahead=1.5) as client,
    ):
        app = App()
        await client.feed(feed).subscribe(app.on_activity)
        await until(lambda: len(issued) >= 3, "two refreshes, each before exp", 8)
        ids = await post(backend, feed, 2)
        await until(lambda: app.ids == ids, "live activities after the first token's exp")
        assert client.connection.connects == 1  # refreshed over the socket, no reconnect
        assert (await client.feed(feed).get(limit=1))["results"][0]["id"] == ids[-1]


async def test_token_expired_gets_a_new_token_over_the_socket(
    server: ServerProcess, uid: str
) -> None:
    feed = f"user:{uid}"
    calls: list[float] = []

    def get_token() -> str:
        calls.append(asyncio.get_running_loop().time())
        return user_token(uid, ttl=60)

    first = user_token(uid, ttl=1.5)  # no refresh ahead: the server must say it expired
    async with (
        writer(server.url) as backend,
        Tidings(
            server.url, API_KEY, token=first, get_token=get_token, refresh_ahead=None
        ) as client,
    ):
        app = App()
        await client.feed(feed).subscribe(app.on_activity)
        await until(lambda: calls, "get_token on token.expired", 8)
        await until(lambda: client.tokens.token != first, "the new token in use")
        ids = await post(backend, feed, 2)
        await until(lambda: app.ids == ids, "live activities after token.expired")
        assert client.connection.connects == 1 and len(calls) == 1


async def test_a_refreshed_token_that_may_not_read_the_feed_ends_the_subscription(
    server: ServerProcess, uid: str
) -> None:
    feed = f"user:{uid}"
    async with Tidings(
        server.url, API_KEY, token=user_token(uid, ttl=1.5),
        get_token=lambda: user_token(f"{uid}other", ttl=60), refresh_ahead=None,
    ) as client:  # fmt: skip
        app = App()
        subscription = await client.feed(feed).subscribe(app.on_activity, **app.callbacks())
        await until(lambda: app.errors, "on_error once the new token dropped the feed", 8)
        assert isinstance(app.errors[0], TidingsError) and app.errors[0].code == 17
        assert not subscription.active and not client._subscriptions


async def test_presence_and_publish_in_a_raid_room(server: ServerProcess, uid: str) -> None:
    room = f"raid:{uid}"

    def member(user: str) -> str:
        return user_token(user, resource="*", action="*", feed_id=f"raid{uid}")

    async with (
        Tidings(server.url, API_KEY, token=member("bob")) as bob,
        Tidings(server.url, API_KEY, token=member("carol")) as carol,
    ):
        joins: list[str] = []
        bob.on("presence.join", lambda data: joins.append(data["user_id"]))
        app = App()
        await bob.feed(room).subscribe(app.on_activity, presence={"info": {"class": "tank"}})
        await carol.feed(room).subscribe(App().on_activity, presence={"info": {"class": "healer"}})
        await until(lambda: "carol" in joins, "carol's presence.join")
        roster = await bob.presence(room)
        assert roster["count"] == 2
        assert {m["user_id"]: m["info"] for m in roster["members"]} == {
            "bob": {"class": "tank"}, "carol": {"class": "healer"}}  # fmt: skip
        stored = await carol.publish(room, {"actor": "carol", "verb": "call", "object": "pull:5"})
        await until(lambda: app.ids == [stored["id"]], "carol's publish, live, once")
        assert app.got[0]["object"] == "pull:5"
        more = await post(carol, room, 2)  # REST with the same token
        await until(lambda: app.ids == [stored["id"], *more], "the REST adds too")


async def test_a_device_clock_an_hour_fast_refreshes_tokens_a_bounded_number_of_times(
    server: ServerProcess, uid: str
) -> None:
    feed = f"user:{uid}"
    calls = {"iat": 0, "date": 0}

    def issuer(kind: str) -> Callable[[], str]:
        def issue() -> str:
            calls[kind] += 1
            claims = {"iat": int(time.time())} if kind == "iat" else {}  # the server's clock
            return user_token(uid, ttl=60, **claims)

        return issue

    def fast() -> float:
        return time.time() + 3600  # every token looks expired on arrival

    async with (
        writer(server.url) as backend,
        Tidings(server.url, API_KEY, get_token=issuer("iat"), clock=fast) as with_iat,
        Tidings(server.url, API_KEY, get_token=issuer("date"), clock=fast) as with_date,
    ):  # without iat, the HTTP Date header of the first REST answer tells the server's time
        apps = {"iat": App(), "date": App()}
        await with_iat.feed(feed).subscribe(apps["iat"].on_activity)
        await with_date.feed(feed).subscribe(apps["date"].on_activity)
        ids = await post(backend, feed, 2)
        await until(lambda: all(app.ids == ids for app in apps.values()), "live on both")
        assert calls == {"iat": 1, "date": 1}
        assert with_iat.connection.connects == with_date.connection.connects == 1
