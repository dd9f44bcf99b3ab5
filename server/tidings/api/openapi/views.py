"""`GET openapi.json` (the document) and `GET docs/` (the document as a page, rendered here with
jinja2: no script, nothing fetched from elsewhere). Neither takes an api_key or a token."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from aiohttp import web
from jinja2 import Environment, FileSystemLoader, select_autoescape

from ..encoding import encode
from ..keys import SETTINGS
from .document import PREFIX, build_document

Json = dict[str, Any]


@cache
def _document(groups: tuple[str, ...]) -> Json:
    return build_document(groups)


@cache
def _encoded(groups: tuple[str, ...]) -> bytes:
    return encode(_document(groups))


def _groups(request: web.Request) -> tuple[str, ...]:
    return tuple(sorted(request.config_dict[SETTINGS].feeds.keys()))


async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(body=_encoded(_groups(request)), content_type="application/json")


def schema_name(schema: Json) -> str:
    """A schema as the page names it: `Activity`, `[Follow]`, `A or B`."""
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " or ".join(schema_name(part) for part in schema["anyOf"])
    if schema.get("type") == "array":
        return f"[{schema_name(schema.get('items', {}))}]"
    return str(schema.get("type", "any"))


@cache
def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(Path(__file__).parent), autoescape=select_autoescape(["html"])
    )
    env.filters["schema_name"] = schema_name
    return env


@cache
def _page(groups: tuple[str, ...]) -> str:
    doc = _document(groups)
    tags: dict[str, list[Json]] = {}
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            entry = {**op, "method": method.upper(), "path": PREFIX + path}
            tags.setdefault(op["tags"][0], []).append(entry)
    return _environment().get_template("page.html").render(doc=doc, tags=tags, base=PREFIX)


async def api_page(request: web.Request) -> web.Response:
    return web.Response(text=_page(_groups(request)), content_type="text/html")
