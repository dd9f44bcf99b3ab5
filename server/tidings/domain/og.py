"""Link previews, pure: a page's Open Graph data (with the page's title, description and icon
as fall-backs, as Stream's scraper does) in the shape of Stream's og/ answer."""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin

from bs4 import BeautifulSoup

NO_OG = "couldn't find og data for the provided url"
SCALARS = ("title", "type", "url", "site_name", "description", "determiner", "locale")
MEDIA = {"image": "images", "video": "videos", "audio": "audios"}
# the properties of each structured og:image / og:video / og:audio, as Stream answers them
MEDIA_FIELDS = {
    "image": ("url", "secure_url", "width", "height", "type", "alt"),
    "video": ("url", "secure_url", "width", "height", "type"),
    "audio": ("url", "secure_url", "type"),
}
MAX_ITEMS = 10  # images, videos, audios each
MAX_TEXT = 2048


def parse_preview(html: str | bytes, page_url: str) -> dict[str, Any] | None:
    """The preview of a page (`page_url`: where it was found, after redirects, to resolve
    relative URLs against); None when it has neither Open Graph data nor a title."""
    soup = BeautifulSoup(html, "html.parser")
    preview: dict[str, Any] = {}
    media: dict[str, list[dict[str, Any]]] = {"image": [], "video": [], "audio": []}
    for meta in soup.find_all("meta"):
        key = str(meta.get("property") or meta.get("name") or "").strip().lower()
        content = meta.get("content")
        if not key.startswith("og:") or not isinstance(content, str) or not content.strip():
            if key == "twitter:site" and isinstance(content, str) and content.strip():
                preview.setdefault("site", content.strip()[:MAX_TEXT])
            continue
        _take(preview, media, key[3:], content.strip()[:MAX_TEXT], page_url)
    found_og = bool(preview.keys() - {"site"}) or any(media.values())
    if "title" not in preview and soup.title is not None and soup.title.string:
        preview["title"] = soup.title.string.strip()[:MAX_TEXT]
    if "description" not in preview:
        description = soup.find("meta", attrs={"name": "description"})
        if description is not None and isinstance(description.get("content"), str):
            preview["description"] = str(description["content"]).strip()[:MAX_TEXT]
    if not found_og and not preview.get("title"):
        return None
    for kind, items in media.items():
        if items:
            preview[MEDIA[kind]] = items
    icon = _favicon(soup, page_url)
    if icon:
        preview["favicon"] = icon
    preview.setdefault("url", page_url)
    return {k: v for k, v in preview.items() if v not in ("", None)}


def _take(
    preview: dict[str, Any], media: dict[str, list[dict[str, Any]]], prop: str, value: str,
    page_url: str,
) -> None:  # fmt: skip
    """One og: property. A bare og:image starts a new image; og:image:width and the others
    describe the latest one (the Open Graph protocol's arrays)."""
    kind, _, field = prop.partition(":")
    if kind in media:
        items = media[kind]
        if field in ("", "url"):
            if len(items) < MAX_ITEMS:
                items.append({kind: urljoin(page_url, value)})
            return
        if items and field in MEDIA_FIELDS[kind] and field not in items[-1]:
            items[-1][field] = _number(value) if field in ("width", "height") else value
        return
    if prop in SCALARS and prop not in preview:
        preview[prop] = urljoin(page_url, value) if prop == "url" else value


def _number(value: str) -> int | str:
    return int(value) if value.isdigit() and len(value) < 10 else value


def _favicon(soup: BeautifulSoup, page_url: str) -> str | None:
    for link in soup.find_all("link"):
        rel: Any = link.get("rel") or []
        rels = {r.lower() for r in ([rel] if isinstance(rel, str) else rel)}
        href = link.get("href")
        if rels & {"icon", "shortcut", "apple-touch-icon"} and isinstance(href, str) and href:
            return urljoin(page_url, href.strip())
    return None
