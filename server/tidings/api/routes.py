"""The route table. Stream's paths, each with its trailing slash optional."""

from __future__ import annotations

from aiohttp import web

from . import activities, admin, feeds, follows, ops, reactions
from .dashboard import setup_dashboard

BASE = "/api/v1.0"
FEED = BASE + "/feed/{slug}/{user_id}"
SLASH = "{_slash:/?}"
REACTION = BASE + "/reaction"
LOOKUP = "/{lookup:activity_id|user_id|reaction_id}/{value}"


def setup_routes(app: web.Application) -> None:
    app.router.add_routes([
        web.get("/healthz", ops.healthz),
        web.get("/readyz", ops.readyz),
        web.get("/metrics", ops.prometheus),
        web.get("/admin/stats", admin.stats, allow_head=False),
        # The rest of Stream's v1.0 calls on activities (api/activities.py).
        web.get(BASE + "/activities" + SLASH, activities.get_activities, allow_head=False),
        web.post(BASE + "/activities" + SLASH, activities.update_activities),
        web.post(BASE + "/activity" + SLASH, activities.partial_update),
        web.post(BASE + "/feed/add_to_many" + SLASH, activities.add_to_many),
        web.post(
            BASE + "/feed_targets/{slug}/{user_id}/activity_to_targets" + SLASH,
            activities.activity_to_targets,
        ),
        web.get(BASE + "/stats/follow" + SLASH, activities.follow_stats, allow_head=False),
        web.post(FEED + SLASH, feeds.add_activities),
        web.get(FEED + SLASH, feeds.read_feed, allow_head=False),
        # Follows: `follows/` is stream-python's spelling, `following/` the npm SDK's.
        web.post(FEED + "/follows" + SLASH, follows.follow),
        web.get(FEED + "/follows" + SLASH, follows.following, allow_head=False),
        web.delete(FEED + "/follows/{target}" + SLASH, follows.unfollow),
        web.post(FEED + "/following" + SLASH, follows.follow),
        web.get(FEED + "/following" + SLASH, follows.following, allow_head=False),
        web.delete(FEED + "/following/{target}" + SLASH, follows.unfollow),
        web.get(FEED + "/followers" + SLASH, follows.followers, allow_head=False),
        web.delete(FEED + "/{activity_id}" + SLASH, feeds.remove_activity),
        # follows in batches
        web.post(BASE + "/follow_many" + SLASH, follows.follow_many),
        web.post(BASE + "/unfollow_many" + SLASH, follows.unfollow_many),
        # Reactions (api/reactions.py)
        web.post(REACTION + SLASH, reactions.add),
        web.get(REACTION + LOOKUP + SLASH, reactions.filter_reactions, allow_head=False),
        web.get(REACTION + LOOKUP + "/{kind}" + SLASH, reactions.filter_reactions,
                allow_head=False),
        web.get(REACTION + "/{reaction_id}" + SLASH, reactions.get, allow_head=False),
        web.put(REACTION + "/{reaction_id}" + SLASH, reactions.update),
        web.delete(REACTION + "/{reaction_id}" + SLASH, reactions.delete),
        web.put(REACTION + "/{reaction_id}/restore" + SLASH, reactions.restore),
    ])  # fmt: skip
    setup_dashboard(app)
