"""The configuration reference (docs/reference/configuration.md) lists every key of the packaged
defaults with the same default value, and no key the defaults do not have.

The defaults are read through the one loader, `load_settings`, so the check follows the
defaults file wherever it is packaged."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path
from typing import Any

from tidings.config import load_settings

REFERENCE = Path(__file__).parents[3] / "docs" / "reference" / "configuration.md"
# a table row of the reference: | `section.key` | `default` | what it does |
ROW = re.compile(r"^\| `(?P<key>[a-z0-9_]+\.[a-z0-9_]+)` \| `(?P<value>[^`]*)` \|", re.MULTILINE)
# the feed groups the defaults ship: | `group` | settings |
GROUP_ROW = re.compile(r"^\| `(?P<group>[a-z0-9_]+)` \| (?P<settings>[^|]+) \|$", re.MULTILINE)


def _plain(value: Any) -> Any:
    """A setting as TOML would write it: paths and secrets as strings, tuples as lists."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str):
        return str(value)
    return value


def _packaged_defaults() -> dict[str, Any]:
    settings = load_settings(environ={})
    keys: dict[str, Any] = {}
    for section in dataclasses.fields(settings):
        if section.name == "feeds":
            continue
        values = getattr(settings, section.name)
        for key in dataclasses.fields(values):
            keys[f"{section.name}.{key.name}"] = _plain(getattr(values, key.name))
    return keys


def _documented() -> dict[str, Any]:
    text = REFERENCE.read_text()
    rows = {m["key"]: m["value"] for m in ROW.finditer(text)}
    return {key: tomllib.loads(f"v = {value}")["v"] for key, value in rows.items()}


def test_every_packaged_key_is_documented_with_its_default() -> None:
    defaults, documented = _packaged_defaults(), _documented()
    assert sorted(set(defaults) - set(documented)) == [], "keys missing from the reference"
    assert sorted(set(documented) - set(defaults)) == [], "keys the defaults do not have"
    wrong = {k: (documented[k], v) for k, v in defaults.items() if documented[k] != v}
    assert wrong == {}, "(documented, packaged) defaults that differ"


def test_the_shipped_feed_groups_are_documented() -> None:
    groups = load_settings(environ={}).feeds
    text = REFERENCE.read_text()
    documented = {m["group"]: m["settings"] for m in GROUP_ROW.finditer(text)}
    assert set(groups) <= set(documented)
    for name, group in groups.items():
        assert group.type in documented[name], name
        assert ("presence = true" in documented[name]) == group.presence, name
        assert (f'follow = "{group.follow}"' in documented[name]) == (group.follow != "open")
