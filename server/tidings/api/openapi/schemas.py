"""Marshmallow schemas of what the API answers (and of the request bodies that are validated by
hand rather than by a schema of their own), for the OpenAPI document only.

Answers are open (`unknown = INCLUDE`, so `additionalProperties: true`): an activity holds its
custom fields, a user or an entry its `data`, and Stream adds fields over time that its SDKs
ignore. What is listed is what every answer of that kind has; `duration` is in every body
(`api/errors.py answer`)."""

from __future__ import annotations

from marshmallow import INCLUDE, Schema, fields, validate


class Open(Schema):
    class Meta:
        unknown = INCLUDE


class Error(Open):
    """Stream's error body: every 4xx and 5xx of the API."""

    code = fields.Integer(required=True)
    detail = fields.String(required=True)
    exception = fields.String(required=True)
    status_code = fields.Integer(required=True)
    exception_fields = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))
    duration = fields.String(required=True)


class Timed(Open):
    """An answer with nothing to say but how long it took (`{}` and `duration`)."""

    duration = fields.String(required=True)


class Activity(Open):
    """An activity as answered (an aggregated feed's group has an `id` too, and enriched reads
    replace `actor`, `object` and `target` references by their objects)."""

    id = fields.String(required=True)
    actor = fields.Raw()
    verb = fields.String()
    object = fields.Raw()
    target = fields.Raw(allow_none=True)
    time = fields.String()
    foreign_id = fields.String(allow_none=True)
    to = fields.List(fields.String())
    origin = fields.String(allow_none=True)


class AddedActivity(Activity):
    duration = fields.String(required=True)


class Activities(Timed):
    activities = fields.List(fields.Nested(Activity), required=True)


class Results(Timed):
    results = fields.List(fields.Nested(Activity), required=True)


class FeedPage(Results):
    """A page of a feed: activities, or an aggregated / notification feed's groups (with the
    `unseen` and `unread` counts of a notification feed)."""

    next = fields.String(required=True)
    unseen = fields.Integer()
    unread = fields.Integer()


class Removed(Timed):
    removed = fields.String(required=True)


class Targets(Timed):
    """activity_to_targets/: the targets added and removed."""


class FollowCount(Open):
    feed = fields.String(required=True)
    count = fields.Integer(required=True)


class FollowStats(Timed):
    results = fields.Dict(keys=fields.String(), values=fields.Nested(FollowCount), required=True)


class Follow(Open):
    feed_id = fields.String(required=True)
    target_id = fields.String(required=True)
    created_at = fields.String(required=True)
    updated_at = fields.String(required=True)


class Follows(Timed):
    results = fields.List(fields.Nested(Follow), required=True)


class File(Timed):
    file = fields.String(required=True)


class Preview(Timed):
    """og/: the page's Open Graph tags."""


class User(Open):
    id = fields.String(required=True)
    data = fields.Dict(required=True)
    created_at = fields.String(required=True)
    updated_at = fields.String(required=True)


class TimedUser(User):
    duration = fields.String(required=True)


class Users(Timed):
    users = fields.List(fields.Nested(User), required=True)


class CreatedUsers(Timed):
    created_users = fields.List(fields.Nested(User), required=True)


class DeletedUsers(Timed):
    deleted_user_ids = fields.List(fields.String(), required=True)


class Entry(Open):
    id = fields.String(required=True)
    collection = fields.String(required=True)
    data = fields.Dict(required=True)
    foreign_id = fields.String(required=True)
    created_at = fields.String(required=True)
    updated_at = fields.String(required=True)


class TimedEntry(Entry):
    duration = fields.String(required=True)


class SelectedData(Open):
    data = fields.List(fields.Dict(), required=True)


class Selected(Timed):
    response = fields.Nested(SelectedData, required=True)


class Upserted(Timed):
    data = fields.Dict(keys=fields.String(), values=fields.List(fields.Dict()))


class Reaction(Open):
    id = fields.String(required=True)
    kind = fields.String(required=True)
    activity_id = fields.String(required=True)
    user_id = fields.String(required=True)
    data = fields.Dict(required=True)
    parent = fields.String(required=True)
    created_at = fields.String(required=True)
    updated_at = fields.String(required=True)
    latest_children = fields.Dict(required=True)
    children_counts = fields.Dict(required=True)


class TimedReaction(Reaction):
    duration = fields.String(required=True)


class Reactions(Timed):
    results = fields.List(fields.Nested(Reaction), required=True)
    next = fields.String(required=True)
    activity = fields.Nested(Activity)


class Export(Open):
    user_id = fields.String(required=True)
    activity_count = fields.Integer(required=True)
    activity_ids = fields.List(fields.String(), required=True)
    reaction_count = fields.Integer(required=True)
    reaction_ids = fields.List(fields.String(), required=True)


class Exported(Timed):
    export = fields.Nested(Export, required=True)


# Request bodies validated by hand (domain/ and objects/), described here.

_ID = validate.Regexp(r"^[A-Za-z0-9_-]{1,255}$")


class NewUser(Schema):
    class Meta:
        unknown = INCLUDE

    id = fields.String(required=True, validate=_ID)
    data = fields.Dict()


class UserData(Open):
    data = fields.Dict(required=True)


class NewUsers(Schema):
    users = fields.List(fields.Nested(NewUser), required=True)
    override = fields.Boolean()


class NewEntry(Open):
    id = fields.String(validate=_ID)
    data = fields.Dict(required=True)
    user_id = fields.String()


class EntryData(Open):
    data = fields.Dict(required=True)


class UpsertBody(Schema):
    data = fields.Dict(keys=fields.String(), values=fields.List(fields.Dict()), required=True)


class NewReaction(Open):
    kind = fields.String(required=True, validate=validate.Length(min=1, max=255))
    activity_id = fields.String()
    user_id = fields.String()
    data = fields.Dict()
    target_feeds = fields.List(fields.String())
    target_feeds_extra_data = fields.Dict()
    parent = fields.String()
    id = fields.String()


class ReactionChange(Open):
    data = fields.Dict()
    target_feeds = fields.List(fields.String())


class ActivityChange(Open):
    id = fields.String()
    foreign_id = fields.String()
    time = fields.String()
    set = fields.Dict()
    unset = fields.List(fields.String())


class Changes(Schema):
    changes = fields.List(fields.Nested(ActivityChange), required=True)


class AddToMany(Schema):
    activity = fields.Dict(required=True)
    feeds = fields.List(fields.String(), required=True)


class Retarget(Open):
    foreign_id = fields.String(required=True)
    time = fields.String(required=True)
    new_targets = fields.List(fields.String())
    added_targets = fields.List(fields.String())
    removed_targets = fields.List(fields.String())


class ActivityDeletion(Open):
    id = fields.String(required=True)
    remove_from_feeds = fields.List(fields.String(), required=True)


class DeleteActivities(Schema):
    activities = fields.List(fields.Nested(ActivityDeletion), required=True)


class DeleteReactions(Schema):
    ids = fields.List(fields.String(), required=True)
    soft_delete = fields.Boolean()


class FullUpdates(Schema):
    activities = fields.List(fields.Dict(), required=True)
