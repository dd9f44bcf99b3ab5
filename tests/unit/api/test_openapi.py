"""The OpenAPI document and the router agree: every route of the API has its operation in the
document, and every operation of the document is a route. The document is valid OpenAPI 3.1
and its page renders every operation."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tidings.api.app import create_api
from tidings.api.openapi.document import build_document
from tidings.api.openapi.views import _page
from tidings.config import load_settings

METHODS = {"GET", "POST", "PUT", "DELETE", "PATCH"}


@pytest.fixture(scope="module")
def groups() -> tuple[str, ...]:
    return tuple(sorted(load_settings(environ={}).feeds.keys()))


@pytest.fixture(scope="module")
def document(groups: tuple[str, ...]) -> dict[str, Any]:
    return build_document(groups)


def as_documented(canonical: str) -> str:
    """A route's path as the document writes it: the optional trailing slash written, the
    optional separator of `user//alice/` left out, and `{lookup:a|b}` a parameter."""
    path = canonical.replace("{_slash}", "/").replace("{_sep}", "")
    return re.sub(r"{(\w+):[^}]*}", r"{\1}", path)


def routed() -> set[tuple[str, str]]:
    api = create_api()
    found = set()
    for route in api.router.routes():
        if route.method in METHODS and route.resource is not None:
            found.add((route.method, as_documented(route.resource.canonical)))
    return found


def documented(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }


def test_every_route_has_its_operation_and_every_operation_its_route(
    document: dict[str, Any],
) -> None:
    routes, operations = routed(), documented(document)
    assert sorted(routes - operations) == [], "routes without an operation in the document"
    assert sorted(operations - routes) == [], "operations of the document without a route"


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

    assert document["openapi"] == "3.1.0"
    OPENAPI_31_VALIDATOR.validate(document)


def test_every_operation_answers_streams_error_shape_for_4xx(document: dict[str, Any]) -> None:
    for path, operations in document["paths"].items():
        for method, op in operations.items():
            error = op["responses"]["4XX"]["content"]["application/json"]["schema"]
            assert error == {"$ref": "#/components/schemas/Error"}, (method, path)
    required = document["components"]["schemas"]["Error"]["required"]
    assert set(required) >= {"code", "detail", "exception", "status_code", "duration"}


def test_a_feeds_slug_is_a_configured_group(
    document: dict[str, Any], groups: tuple[str, ...]
) -> None:
    [slug] = [
        p
        for p in document["paths"]["/feed/{slug}/{user_id}/"]["get"]["parameters"]
        if p["name"] == "slug"
    ]
    assert slug["schema"]["enum"] == sorted(groups)


def test_the_page_lists_every_operation(document: dict[str, Any], groups: tuple[str, ...]) -> None:
    page = _page(groups)
    for operations in document["paths"].values():
        for op in operations.values():
            assert f'id="{op["operationId"]}"' in page
    assert "<script" not in page  # nothing to run, nothing fetched
