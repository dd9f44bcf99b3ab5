"""What a token may do with users and collection entries, as Stream's permission model has it:

- a token for the resource on every feed (`feed_id: "*"`): a server token (`*`), or what Stream's
  SDKs sign server-side (`users` or `collections`, action `*`): everything, the batch calls too;
- a user token (`{"user_id": "alice"}`): read every user and every entry; create, change and
  delete its own user; add entries (it owns them), change and delete the entries it owns; none
  of the batch calls (`collections/`: Stream's SDKs refuse them client-side);
- any other token (a feed's, a raid room's): nothing.
"""

from __future__ import annotations

from ..auth import Action, Grant, Resource
from ..domain.errors import InputError, NotAllowedError


def _user_token(grant: Grant) -> str | None:
    return grant.user_id if grant.resource is None else None


def require_user(grant: Grant, action: Action, user_id: str) -> None:
    """`grant` may `action` the user `user_id`."""
    if grant.app_wide("users", action):
        return
    own = _user_token(grant)
    if own is not None and (action == "read" or own == user_id):
        return
    raise NotAllowedError(f"you don't have permission to {action} user {user_id}")


def require_entry(grant: Grant, action: Action, name: str, owner: str | None) -> None:
    """`grant` may `action` the entry `name`, owned by `owner`."""
    if grant.app_wide("collections", action):
        return
    own = _user_token(grant)
    if own is not None and (action == "read" or own == owner):
        return
    raise NotAllowedError(f"you don't have permission to {action} collection entry {name}")


def owner_of_new_entry(grant: Grant, requested: str | None) -> str | None:
    """Who owns an entry `grant` adds: `requested` (the body's `user_id`) for a server-side
    token, the token's own user for a user token, which may name no other user."""
    if grant.app_wide("collections", "write"):
        return requested
    own = _user_token(grant)
    if own is None:
        raise NotAllowedError("you don't have permission to add collection entries")
    if requested is not None and requested != own:
        raise InputError(
            f"user {own} may not add an entry for user {requested}",
            {"user_id": [f"{requested} is not {own}: a user token acts as its own user"]},
        )
    return own


def require_server_side(grant: Grant, action: Action, resource: Resource = "collections") -> None:
    """The batch calls: only a token for `resource` on every feed (a server-side token)."""
    if not grant.app_wide(resource, action):
        raise NotAllowedError(
            f"you don't have permission to {action} {resource} in batches: this call needs a "
            f'server-side token (feed_id "*")'
        )
