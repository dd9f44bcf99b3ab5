"""Every operation of the REST API as the OpenAPI document tells it: method, path (relative to
/api/v1.0, with the trailing slash Stream's SDKs write), what it takes and what it answers.

One line per route of `api/routes.py`; `tests/unit/api/test_openapi.py` walks the router and
fails on a route without an operation here, or an operation without a route. Request bodies
are the schemas that validate them where there is one (`ActivitySchema`, the follow schemas),
else the descriptions of `schemas.py`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from marshmallow import Schema

from ...domain.activities import ActivitySchema
from ...domain.enrichment import RECENT_MAX
from ..follows import FollowManySchema, FollowSchema, UnfollowManySchema
from ..params import MAX_LIMIT, MAX_OFFSET
from . import schemas as s

Json = dict[str, Any]
ACTIVITY_ID = r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"


@dataclass(frozen=True)
class Operation:
    id: str  # operationId
    method: str
    path: str
    summary: str
    tag: str
    answer: type[Schema] | Json  # the body of a success
    status: int = 200
    query: tuple[Json, ...] = ()
    body: type[Schema] | Json | None = None  # JSON, or a JSON schema naming schemas
    content: str = "application/json"  # of the request body
    answers: str = "application/json"  # of the answer
    public: bool = False  # no api_key or token
    links: Json | None = None  # OpenAPI links of the success answer


def q(name: str, schema: Json, description: str = "", required: bool = False) -> Json:
    param: Json = {"name": name, "in": "query", "schema": schema, "required": required}
    if description:
        param["description"] = description
    return param


def _flag(name: str, description: str = "") -> Json:
    return q(name, {"type": "boolean"}, description)


def _text(name: str, description: str = "") -> Json:
    return q(name, {"type": "string"}, description)


LIMIT = q("limit", {"type": "integer", "minimum": 0, "maximum": MAX_LIMIT})
LIST_LIMIT = q("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT})
OFFSET = q("offset", {"type": "integer", "minimum": 0})
LIST_OFFSET = q("offset", {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET})
ID_BOUNDS = tuple(
    q(name, {"type": "string", "pattern": ACTIVITY_ID})
    for name in ("id_lt", "id_lte", "id_gt", "id_gte")
)
UUID_BOUNDS = tuple(
    q(name, {"type": "string", "format": "uuid"}) for name in ("id_lt", "id_lte", "id_gt", "id_gte")
)
MARKS = (
    _text("mark_seen", "notification feeds: `true`, or comma-separated group ids"),
    _text("mark_read", "notification feeds: `true`, or comma-separated group ids"),
)
FEED_PAGE = (LIMIT, OFFSET, *ID_BOUNDS, *MARKS)
WHICH = (
    _text("ids", "comma-separated activity ids"),
    _text("foreign_ids", "comma-separated foreign ids, with `timestamps`"),
    _text("timestamps", "comma-separated times, one per foreign id"),
)
ENRICH = (
    _flag("withOwnReactions"),
    _flag("withRecentReactions"),
    _flag("withReactionCounts"),
    _flag("withOwnChildren"),
    q("recentReactionsLimit", {"type": "integer", "minimum": 1, "maximum": RECENT_MAX}),
    _text("reactionKindsFilter", "comma-separated reaction kinds"),
    _text("user_id", "whose reactions are own (a server-side token only)"),
)
FOLLOW_LIST = (LIST_LIMIT, LIST_OFFSET, _text("filter", "comma-separated feed ids"))
URL = _text("url", "an upload's URL")
IMAGE = (
    URL,
    q("w", {"type": "integer", "minimum": 1}),
    q("h", {"type": "integer", "minimum": 1}),
    q("resize", {"type": "string", "enum": ["clip", "crop", "scale", "fill"]}),
    _text("crop", "comma-separated: top, bottom, left, right, center"),
)
IDS = (_text("ids", "comma-separated ids (or the parameter repeated)"),)
UPLOAD = {
    "type": "object",
    "properties": {"file": {"type": "string", "format": "binary"}},
    "required": ["file"],
}
NEW_ACTIVITIES = {"type": "object", "properties": {
    "activities": {"type": "array", "items": ActivitySchema},
}, "required": ["activities"]}  # fmt: skip


def _links(target: str, **parameters: str) -> Json:
    return {target: {"operationId": target, "parameters": parameters}}


FEED = "/feed/{slug}/{user_id}"
REACTION_LINKS = {
    **_links("getReaction", reaction_id="$response.body#/id"),
    **_links("updateReaction", reaction_id="$response.body#/id"),
    **_links("deleteReaction", reaction_id="$response.body#/id"),
}
USER_LINKS = {
    **_links("getUser", user_id="$response.body#/id"),
    **_links("updateUser", user_id="$response.body#/id"),
    **_links("deleteUser", user_id="$response.body#/id"),
}
ENTRY = {"collection": "$response.body#/collection", "entry_id": "$response.body#/id"}
ENTRY_LINKS = {
    **_links("getEntry", **ENTRY),
    **_links("updateEntry", **ENTRY),
    **_links("deleteEntry", **ENTRY),
}
ANY_ACTIVITY = {"anyOf": [s.AddedActivity, s.Activities]}
# an activity just added, liked (a batch answer has no `id`: the link does not apply to it)
REACT = {"addReaction": {"operationId": "addReaction", "requestBody": {
    "kind": "like", "activity_id": "$response.body#/id", "user_id": "$response.body#/actor",
}}}  # fmt: skip

OPERATIONS = [
    # activities that name no feed of their own
    Operation("getActivities", "GET", "/activities/", "Activities by id, or by foreign id and time",
              "activities", s.Results, query=WHICH),
    Operation("updateActivities", "POST", "/activities/", "Replace whole activities",
              "activities", s.Activities, 201, body=s.FullUpdates),
    Operation("partialUpdate", "POST", "/activity/", "Set and unset fields of activities",
              "activities", s.Activities, 201, body={"anyOf": [s.Changes, s.ActivityChange]}),
    Operation("addToMany", "POST", "/feed/add_to_many/", "Add one activity to many feeds",
              "activities", s.Timed, 201, body=s.AddToMany),
    Operation("activityToTargets", "POST", "/feed_targets/{slug}/{user_id}/activity_to_targets/",
              "Change the `to` targets of an activity", "activities", s.Targets, 201,
              body=s.Retarget),
    Operation("followStats", "GET", "/stats/follow/", "Follower and following counts",
              "follows", s.FollowStats, query=(
                  _text("followers", "a feed id"), _text("following", "a feed id"),
                  _text("followers_slugs", "comma-separated feed groups"),
                  _text("following_slugs", "comma-separated feed groups"))),
    # a feed's activities
    Operation("addActivities", "POST", FEED + "/", "Add an activity, or a batch of them",
              "feeds", ANY_ACTIVITY, 201, body={"anyOf": [ActivitySchema, NEW_ACTIVITIES]},
              links=REACT),
    Operation("readFeed", "GET", FEED + "/", "A page of a feed", "feeds", s.FeedPage,
              query=FEED_PAGE),
    Operation("removeActivity", "DELETE", FEED + "/{activity_id}/",
              "Remove an activity from a feed (by id, or by foreign id)", "feeds", s.Removed,
              query=(_flag("foreign_id", "the path names a foreign id"),)),
    # follows
    Operation("follow", "POST", FEED + "/follows/", "Follow a feed", "follows", s.Timed, 201,
              body=FollowSchema),
    Operation("following", "GET", FEED + "/follows/", "The feeds this feed follows",
              "follows", s.Follows, query=FOLLOW_LIST),
    Operation("unfollow", "DELETE", FEED + "/follows/{target}/", "Stop following a feed",
              "follows", s.Timed, query=(_flag("keep_history"),)),
    Operation("followNpm", "POST", FEED + "/following/", "Follow a feed (the npm SDK's path)",
              "follows", s.Timed, 201, body=FollowSchema),
    Operation("followingNpm", "GET", FEED + "/following/",
              "The feeds this feed follows (the npm SDK's path)", "follows", s.Follows,
              query=FOLLOW_LIST),
    Operation("unfollowNpm", "DELETE", FEED + "/following/{target}/",
              "Stop following a feed (the npm SDK's path)", "follows", s.Timed,
              query=(_flag("keep_history"),)),
    Operation("followers", "GET", FEED + "/followers/", "The feeds that follow this feed",
              "follows", s.Follows, query=FOLLOW_LIST),
    Operation("followMany", "POST", "/follow_many/", "Follows in a batch (server token)",
              "follows", s.Timed, 201, body={"type": "array", "items": FollowManySchema},
              query=(q("activity_copy_limit", {"type": "integer", "minimum": 0}),)),
    Operation("unfollowMany", "POST", "/unfollow_many/", "Unfollows in a batch (server token)",
              "follows", s.Timed, body={"type": "array", "items": UnfollowManySchema}),
    # uploads, images, link previews
    Operation("uploadFile", "POST", "/files/", "Upload a file", "media", s.File,
              body=UPLOAD, content="multipart/form-data"),
    Operation("deleteFile", "DELETE", "/files/", "Delete an uploaded file", "media", s.Timed,
              query=(URL,)),
    Operation("uploadImage", "POST", "/images/", "Upload an image", "media", s.File,
              body=UPLOAD, content="multipart/form-data"),
    Operation("deleteImage", "DELETE", "/images/", "Delete an uploaded image", "media", s.Timed,
              query=(URL,)),
    Operation("processImage", "GET", "/images/", "Resize or crop an uploaded image", "media",
              s.File, query=IMAGE),
    Operation("openGraph", "GET", "/og/", "A page's Open Graph tags", "media", s.Preview,
              query=(q("url", {"type": "string", "format": "uri"}, required=True),)),
    # users
    Operation("addUser", "POST", "/user/", "Add a user", "users", s.TimedUser, 201,
              body=s.NewUser, query=(_flag("get_or_create"),), links=USER_LINKS),
    Operation("getUser", "GET", "/user/{user_id}/", "A user", "users", s.TimedUser,
              query=(_flag("with_follow_counts"),)),
    Operation("updateUser", "PUT", "/user/{user_id}/", "Replace a user's data", "users",
              s.TimedUser, body=s.UserData),
    Operation("deleteUser", "DELETE", "/user/{user_id}/", "Delete a user", "users", s.Timed),
    Operation("addUsers", "POST", "/users/", "Add users in a batch", "users", s.CreatedUsers,
              201, body=s.NewUsers),
    Operation("getUsers", "GET", "/users/", "Users by id", "users", s.Users, query=IDS),
    Operation("deleteUsers", "DELETE", "/users/", "Delete users by id", "users", s.DeletedUsers,
              query=IDS),
    # collections
    Operation("upsertCollections", "POST", "/collections/", "Insert or replace entries",
              "collections", s.Upserted, body=s.UpsertBody),
    Operation("selectCollections", "GET", "/collections/", "Entries by `collection:id`",
              "collections", s.Selected,
              query=(_text("foreign_ids", "comma-separated `collection:id`"),)),
    Operation("deleteEntries", "DELETE", "/collections/", "Delete entries of a collection",
              "collections", s.Timed, query=(_text("collection_name"), *IDS)),
    Operation("addEntry", "POST", "/collections/{collection}/", "Add an entry", "collections",
              s.TimedEntry, 201, body=s.NewEntry, links=ENTRY_LINKS),
    Operation("getEntry", "GET", "/collections/{collection}/{entry_id}/", "An entry",
              "collections", s.TimedEntry),
    Operation("updateEntry", "PUT", "/collections/{collection}/{entry_id}/",
              "Replace an entry's data", "collections", s.TimedEntry, body=s.EntryData),
    Operation("deleteEntry", "DELETE", "/collections/{collection}/{entry_id}/",
              "Delete an entry", "collections", s.Timed),
    # reactions
    Operation("addReaction", "POST", "/reaction/", "Add a reaction (or a child reaction)",
              "reactions", s.TimedReaction, 201, body=s.NewReaction, links=REACTION_LINKS),
    Operation("filterReactions", "GET", "/reaction/{lookup}/{value}/",
              "Reactions of an activity, a user or a reaction", "reactions", s.Reactions,
              query=(q("limit", {"type": "integer", "minimum": 1}), *UUID_BOUNDS,
                     _flag("with_activity_data"), _flag("with_own_children"),
                     _text("children_user_id"), _text("filter_user_id"))),
    Operation("filterReactionsOfKind", "GET", "/reaction/{lookup}/{value}/{kind}/",
              "Reactions of one kind of an activity, a user or a reaction", "reactions",
              s.Reactions, query=(q("limit", {"type": "integer", "minimum": 1}), *UUID_BOUNDS,
                                  _flag("with_activity_data"), _flag("with_own_children"),
                                  _text("children_user_id"), _text("filter_user_id"))),
    Operation("getReaction", "GET", "/reaction/{reaction_id}/", "A reaction", "reactions",
              s.TimedReaction),
    Operation("updateReaction", "PUT", "/reaction/{reaction_id}/",
              "Change a reaction's data or target feeds", "reactions", s.TimedReaction,
              body=s.ReactionChange),
    Operation("deleteReaction", "DELETE", "/reaction/{reaction_id}/", "Delete a reaction",
              "reactions", s.Timed, query=(_flag("soft", "keep it, restorable"),)),
    Operation("restoreReaction", "PUT", "/reaction/{reaction_id}/restore/",
              "Restore a soft-deleted reaction", "reactions", s.Timed),
    # enriched reads
    Operation("readEnrichedFeed", "GET", "/enrich" + FEED + "/",
              "A page of a feed, references replaced by their objects", "feeds", s.FeedPage,
              query=(*FEED_PAGE, *ENRICH)),
    Operation("getEnrichedActivities", "GET", "/enrich/activities/",
              "Activities by id, enriched", "activities", s.Results, query=(*WHICH, *ENRICH)),
    # data privacy
    Operation("deleteActivitiesOfUser", "POST", "/data_privacy/delete_activities/",
              "Remove activities from feeds (server-side token)", "data privacy", s.Timed,
              body=s.DeleteActivities),
    Operation("deleteReactionsOfUser", "POST", "/data_privacy/delete_reactions/",
              "Delete reactions (server-side token)", "data privacy", s.Timed,
              body=s.DeleteReactions),
    Operation("exportIds", "GET", "/data_privacy/export_ids/{user_id}/",
              "The ids of a user's activities and reactions (server-side token)",
              "data privacy", s.Exported),
    # this document
    Operation("openapi", "GET", "/openapi.json", "This OpenAPI document", "documentation",
              {"type": "object"}, public=True),
    Operation("apiPage", "GET", "/docs/", "This document as a page (HTML)", "documentation",
              {"type": "string"}, public=True, answers="text/html"),
]  # fmt: skip
