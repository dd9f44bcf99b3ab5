"""The route table. Stream's paths, each with its trailing slash optional."""

from __future__ import annotations

from aiohttp import web

from . import feeds, follows, ops

BASE = "/api/v1.0"
FEED = BASE + "/feed/{slug}/{user_id}"
SLASH = "{_slash:/?}"


def setup_routes(app: web.Application) -> None:
    app.router.add_routes([
        web.get("/healthz", ops.healthz),
        web.get("/readyz", ops.readyz),
        web.get("/metrics", ops.prometheus),
        web.post(FEED + SLASH, feeds.add_activities),
        web.get(FEED + SLASH, feeds.read_feed, allow_head=False),
        web.post(FEED + "/follows" + SLASH, follows.follow),
        web.get(FEED + "/follows" + SLASH, follows.following, allow_head=False),
        web.get(FEED + "/followers" + SLASH, follows.followers, allow_head=False),
        web.delete(FEED + "/follows/{target}" + SLASH, follows.unfollow),
        web.delete(FEED + "/{activity_id}" + SLASH, feeds.remove_activity),
        # follows in batches (issue 8 part 3)
        web.post(BASE + "/follow_many" + SLASH, follows.follow_many),
        web.post(BASE + "/unfollow_many" + SLASH, follows.unfollow_many),
    ])  # fmt: skip
