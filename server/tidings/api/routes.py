"""The route table. Stream's paths, each with its trailing slash optional."""

from __future__ import annotations

from aiohttp import web

from . import activities, admin, feeds, follows, media, ops
from .dashboard import setup_dashboard

BASE = "/api/v1.0"
FEED = BASE + "/feed/{slug}/{user_id}"
SLASH = "{_slash:/?}"
MEDIA = "/media"  # where uploads are served (domain/media.py MEDIA_PATH)


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
        # uploads, image processing, link previews (api/media.py)
        web.post(BASE + "/files" + SLASH, media.upload_file),
        web.delete(BASE + "/files" + SLASH, media.delete_file),
        web.post(BASE + "/images" + SLASH, media.upload_image),
        web.delete(BASE + "/images" + SLASH, media.delete_image),
        web.get(BASE + "/images" + SLASH, media.process_image, allow_head=False),
        web.get(BASE + "/og" + SLASH, media.open_graph, allow_head=False),
        web.get(MEDIA + "/{kind}/{root}/{variant}/{name}", media.serve),
    ])  # fmt: skip
    setup_dashboard(app)
