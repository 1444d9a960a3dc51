"""The OpenAPI page (Swagger UI) without a CDN: FastAPI's default page loads its script
and stylesheet from the internet, which an Airflow without internet access cannot reach.
The assets come from an installed Python package (fastapi-offline ships Swagger UI 5,
which renders OpenAPI 3.1) and are served by this app under ASSETS_PATH. When no such
package is installed, the page falls back to FastAPI's CDN links (and says so in the log).
"""
from __future__ import annotations

import importlib.util
import logging
from functools import cache
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

log = logging.getLogger(__name__)

PACKAGE = "fastapi_offline"  # PyPI: fastapi-offline
ASSETS_PATH = "/docs/assets"
JS, CSS, FAVICON = "swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"
MEDIA_TYPES = {JS: "text/javascript", CSS: "text/css", FAVICON: "image/png"}


@cache
def assets_folder() -> Path | None:
    """The installed folder holding Swagger UI's bundle and stylesheet, or None."""
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        folder = Path(location) / "static"
        if (folder / JS).is_file() and (folder / CSS).is_file():
            return folder
    return None


def add_docs(app: FastAPI, docs_url: str = "/docs") -> None:
    """The Swagger UI page at `docs_url` for the app's OpenAPI document; public, like the document."""
    warned = []

    @app.get(docs_url, include_in_schema=False)
    async def swagger_page(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")  # where Airflow mounts this app
        title = f"{app.title} - API"
        folder = assets_folder()
        if folder is None:
            if not warned:
                log.warning("%s is not installed: the page at %s loads Swagger UI from a CDN", PACKAGE, docs_url)
                warned.append(True)
            return get_swagger_ui_html(openapi_url=root + app.openapi_url, title=title)
        return get_swagger_ui_html(openapi_url=root + app.openapi_url, title=title,
                                   swagger_js_url=f"{root}{ASSETS_PATH}/{JS}",
                                   swagger_css_url=f"{root}{ASSETS_PATH}/{CSS}",
                                   swagger_favicon_url=f"{root}{ASSETS_PATH}/{FAVICON}")

    @app.get(ASSETS_PATH + "/{name}", include_in_schema=False)
    async def swagger_asset(name: str) -> FileResponse:
        folder = assets_folder()
        if folder is None or name not in MEDIA_TYPES or not (folder / name).is_file():
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no asset {name}")
        return FileResponse(folder / name, media_type=MEDIA_TYPES[name],
                            headers={"Cache-Control": "public, max-age=86400"})
