"""The explorer's pages (``/ui/``) and the API's OpenAPI document (``/openapi.json``).

The pages are plain HTML, CSS and JavaScript modules shipped in the package
(``sagas/api/ui``, package data): no build step, nothing fetched from outside,
no server process beside the coordinator. They read the same JSON API as the
CLI. The OpenAPI document is ``sagas/api/openapi.yaml``, served as JSON.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import yaml
from aiohttp import web

UI_DIR = Path(__file__).with_name("ui")
OPENAPI_FILE = Path(__file__).with_name("openapi.yaml")

_ASSET = re.compile(r"[a-z0-9_-]{1,64}\.(html|js|css|svg)\Z")
_TYPES = {
    "html": "text/html",
    "js": "text/javascript",
    "css": "text/css",
    "svg": "image/svg+xml",
}
#: the pages load only their own files and talk only to this API
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@cache
def openapi_document() -> bytes:
    """The OpenAPI 3.1 document as JSON bytes (read once)."""
    doc: dict[str, Any] = yaml.safe_load(OPENAPI_FILE.read_text(encoding="utf-8"))
    return orjson.dumps(doc)


def _asset(name: str) -> web.Response:
    match = _ASSET.match(name)
    path = UI_DIR / name
    if match is None or not path.is_file():
        raise web.HTTPNotFound(
            text=orjson.dumps(
                {"error": "not-found", "detail": f"the explorer has no file {name!r}; open /ui/"}
            ).decode(),
            content_type="application/json",
        )
    return web.Response(
        body=path.read_bytes(),
        content_type=_TYPES[match.group(1)],
        charset="utf-8",
        headers=SECURITY_HEADERS,
    )


def add_ui_routes(app: web.Application) -> None:
    async def index(request: web.Request) -> web.Response:
        return _asset("index.html")

    async def asset(request: web.Request) -> web.Response:
        return _asset(request.match_info["name"])

    async def to_index(request: web.Request) -> web.Response:
        raise web.HTTPFound("/ui/")

    async def openapi(request: web.Request) -> web.Response:
        return web.Response(
            body=openapi_document(),
            content_type="application/json",
            headers={"Access-Control-Allow-Origin": "*"},
        )

    app.router.add_get("/", to_index)
    app.router.add_get("/ui", to_index)
    app.router.add_get("/ui/", index)
    app.router.add_get("/ui/{name}", asset)
    app.router.add_get("/openapi.json", openapi)
