"""The search page: ``GET /`` and its script and styles under ``/static``.

Hand-written HTML, CSS and JavaScript in ``static/``, shipped in the package (no CDN, no build
step), so the page works offline. It holds no data of the index: the browser fetches that from
``/info``, ``/search`` and ``/passage`` with the API key, which the page asks for when a call
answers 401 and keeps in the tab's ``sessionStorage``. It writes what the index returns with
``textContent`` only, and a Content-Security-Policy allows scripts and styles from this server
alone, so a passage or a file name holding HTML stays text.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).with_name("static")
ASSETS = "/static"  # the page's script and styles; public, like the page

HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",  # revalidated: a new version's page is seen at once
}


def add_routes(app: FastAPI) -> None:
    """``GET /`` (the page) and ``/static/…`` (its script and styles) on ``app``."""

    @app.get("/", include_in_schema=False)
    async def home() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8", headers=HEADERS)

    app.mount(ASSETS, StaticFiles(directory=STATIC), name="static")
