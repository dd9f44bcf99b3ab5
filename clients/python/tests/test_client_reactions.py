"""`watch_reactions`: an activity's reactions live, and what a reconnect missed handed over
once, by the client itself."""

from __future__ import annotations

from typing import Any

import pytest
from client_helpers import API_KEY, post, until, user_token, writer

from tests.support import ServerProcess
from tidings_client import Tidings

pytestmark = pytest.mark.timeout(30)


async def test_watch_reactions_hands_over_live_and_missed_changes_once(
    server: ServerProcess, uid: str
) -> None:
    got: list[dict[str, Any]] = []
    async with (
        writer(server.url) as backend,
        Tidings(server.url, API_KEY, token=user_token(uid), reconnect_delay=1.0) as client,
    ):
        [activity_id] = await post(backend, f"user:{uid}", 1)
        body = {"kind": "like", "activity_id": activity_id, "user_id": uid}
        watch = await client.watch_reactions(activity_id, got.append)
        first = await backend.rest.call("POST", "reaction/", body)
        await until(lambda: len(got) == 1, "the live add")
        assert got[0]["type"] == "reaction.added" and got[0]["reaction"]["id"] == first["id"]
        assert got[0]["reaction_counts"] == {"like": 1}

        await client.connection.sio.disconnect()  # it reconnects a second later, by itself
        await until(lambda: client.state == "disconnected", "the disconnect")
        missed = await backend.rest.call("POST", "reaction/", {**body, "kind": "comment"})
        await backend.rest.call("PUT", f"reaction/{first['id']}/", {"data": {"n": 1}})
        await until(lambda: len(got) == 3, "the changes missed, after the reconnect")
        assert [(e["type"], e["reaction"]["id"]) for e in got[1:]] == [
            ("reaction.updated", first["id"]), ("reaction.added", missed["id"]),
        ]  # fmt: skip
        assert got[-1]["reaction_counts"] == {"like": 1, "comment": 1}

        await backend.rest.call("DELETE", f"reaction/{missed['id']}/")
        await until(lambda: len(got) == 4, "the live delete")
        assert got[3]["type"] == "reaction.deleted" and got[3]["reaction_counts"]["comment"] == 0
        await watch.unwatch()
        await backend.rest.call("POST", "reaction/", body)
        # A marker on another watch of this socket: events come in order, so one for the
        # unwatched activity would have come before it.
        [other] = await post(backend, f"user:{uid}", 1)
        markers: list[dict[str, Any]] = []
        await client.watch_reactions(other, markers.append)
        await backend.rest.call("POST", "reaction/", {**body, "activity_id": other})
        await until(lambda: markers, "the marker")
        assert len(got) == 4
