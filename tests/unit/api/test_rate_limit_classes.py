"""Which endpoint class each REST route is counted in (api/limits.py): follows, batch calls,
reactions and files apart; every other GET a read, every other call a write."""

from __future__ import annotations

from tidings.api import limits
from tidings.api.routes import API_ROUTES


def _classes() -> dict[str, set[str]]:
    by_class: dict[str, set[str]] = {}
    for route in API_ROUTES:
        handler = route.handler  # type: ignore[attr-defined]
        kind = limits._CLASSES.get(handler)
        if kind is None:
            kind = "reads" if route.method == "GET" else "writes"  # type: ignore[attr-defined]
        by_class.setdefault(kind, set()).add(f"{route.method} {route.path}")  # type: ignore[attr-defined]
    return by_class


def test_each_route_has_its_class() -> None:
    classes = _classes()
    assert set(classes) == {"reads", "writes", "follows", "batch", "reactions", "files"}
    assert all(path.split()[1].startswith("/reaction") for path in classes["reactions"])
    assert all(
        path.split()[1].startswith(("/files", "/images", "/og")) for path in classes["files"]
    )
    assert {p.split()[0] for p in classes["follows"]} == {"POST", "DELETE"}
    assert "POST /follow_many{_slash:/?}" in classes["batch"]
    assert "POST /feed/{slug}/{user_id}{_slash:/?}" in classes["writes"]
    assert "GET /feed/{slug}/{user_id}/followers{_slash:/?}" in classes["reads"]
