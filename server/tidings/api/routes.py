"""Stream's REST API, its route table: paths relative to where the API is mounted
(`/api/v1.0`, see `app.py`), each with its trailing slash optional, as Stream's are."""

from __future__ import annotations

from aiohttp import web

from . import activities, collections, enrich, feeds, follows, media, privacy, reactions, users
from .openapi import views as openapi

FEED = "/feed/{slug}/{user_id}"
SLASH = "{_slash:/?}"
# stream-python joins its base path and the id with a slash of its own: `user//alice/`.
USER = "/user/{_sep:/?}{user_id}"
ENTRY = "/collections/{_sep:/?}{collection}"
REACTION = "/reaction"
LOOKUP = "/{lookup:activity_id|user_id|reaction_id}/{value}"

API_ROUTES = [
    # The rest of Stream's v1.0 calls on activities (api/activities.py).
    web.get("/activities" + SLASH, activities.get_activities, allow_head=False),
    web.post("/activities" + SLASH, activities.update_activities),
    web.post("/activity" + SLASH, activities.partial_update),
    web.post("/feed/add_to_many" + SLASH, activities.add_to_many),
    web.post(
        "/feed_targets/{slug}/{user_id}/activity_to_targets" + SLASH,
        activities.activity_to_targets,
    ),
    web.get("/stats/follow" + SLASH, activities.follow_stats, allow_head=False),
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
    web.post("/follow_many" + SLASH, follows.follow_many),
    web.post("/unfollow_many" + SLASH, follows.unfollow_many),
    # uploads, image processing, link previews (api/media.py)
    web.post("/files" + SLASH, media.upload_file),
    web.delete("/files" + SLASH, media.delete_file),
    web.post("/images" + SLASH, media.upload_image),
    web.delete("/images" + SLASH, media.delete_image),
    web.get("/images" + SLASH, media.process_image, allow_head=False),
    web.get("/og" + SLASH, media.open_graph, allow_head=False),
    # Users and collections (api/users.py, api/collections.py).
    web.post("/user" + SLASH, users.add_user),
    web.get(USER + SLASH, users.get_user, allow_head=False),
    web.put(USER + SLASH, users.update_user),
    web.delete(USER + SLASH, users.delete_user),
    web.post("/users" + SLASH, users.add_users),
    web.get("/users" + SLASH, users.get_users, allow_head=False),
    web.delete("/users" + SLASH, users.delete_users),
    web.post("/collections" + SLASH, collections.upsert),
    web.get("/collections" + SLASH, collections.select, allow_head=False),
    web.delete("/collections" + SLASH, collections.delete_many),
    web.post(ENTRY + SLASH, collections.add_entry),
    web.get(ENTRY + "/{entry_id}" + SLASH, collections.get_entry, allow_head=False),
    web.put(ENTRY + "/{entry_id}" + SLASH, collections.update_entry),
    web.delete(ENTRY + "/{entry_id}" + SLASH, collections.delete_entry),
    # Reactions (api/reactions.py)
    web.post(REACTION + SLASH, reactions.add),
    web.get(REACTION + LOOKUP + SLASH, reactions.filter_reactions, allow_head=False),
    web.get(REACTION + LOOKUP + "/{kind}" + SLASH, reactions.filter_reactions,
            allow_head=False),
    web.get(REACTION + "/{reaction_id}" + SLASH, reactions.get, allow_head=False),
    web.put(REACTION + "/{reaction_id}" + SLASH, reactions.update),
    web.delete(REACTION + "/{reaction_id}" + SLASH, reactions.delete),
    web.put(REACTION + "/{reaction_id}/restore" + SLASH, reactions.restore),
    # Enriched reads (api/enrich.py)
    web.get("/enrich" + FEED + SLASH, enrich.read_feed, allow_head=False),
    web.get("/enrich/activities" + SLASH, enrich.get_activities, allow_head=False),
    # Data privacy (api/privacy.py)
    web.post("/data_privacy/delete_activities" + SLASH, privacy.delete_activities),
    web.post("/data_privacy/delete_reactions" + SLASH, privacy.delete_reactions),
    web.get("/data_privacy/export_ids/{user_id}" + SLASH, privacy.export_ids, allow_head=False),
    # The OpenAPI document of these routes (api/openapi/), and the page that shows it
    web.get("/openapi.json", openapi.openapi_json, allow_head=False),
    web.get("/docs" + SLASH, openapi.api_page, allow_head=False),
]  # fmt: skip
# Uploads as they are served, outside the API (under domain/media.py MEDIA_PATH): signed URLs.
MEDIA_ROUTES = [web.get("/{kind}/{root}/{variant}/{name}", media.serve)]
