"""The FastAPI app Airflow's API server mounts at PLUGIN_PREFIX (/contact-imports): the
upload API under API_PREFIX, the Contact imports page at PAGE_PATH, the OpenAPI document
and its page at /openapi.json and /docs (public, like Airflow's own)."""
from __future__ import annotations

import html
import json
from functools import cache
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from contact_import import statuses
from contact_import.channels import CHANNELS, TAG_MODES
from contact_import.endpoints import API_PREFIX, API_URL_PREFIX, IMPORT_DAG_ID, PAGE_PATH

from . import docs, schemas
from .routes import imports, templates, workspaces

PAGE = Path(__file__).resolve().parent.parent / "contact_imports_page.html"

app = FastAPI(
    title="Contact imports", version="1", openapi_url="/openapi.json", docs_url=None, redoc_url=None,
    description=f"Upload social contact files into the CDP; each upload is one `{IMPORT_DAG_ID}` DAG run."
                " Authenticate with a JWT from Airflow's `POST /auth/token` (or Airflow's UI session).")
app.include_router(imports.router, prefix=API_PREFIX)
app.include_router(templates.router, prefix=API_PREFIX)
app.include_router(workspaces.router, prefix=API_PREFIX)
docs.add_docs(app, "/docs")


def openapi() -> dict:
    """FastAPI's document, each error answer as `Error` (schemas.one_error_model); built once."""
    if app.openapi_schema is None:
        app.openapi_schema = schemas.one_error_model(FastAPI.openapi(app))
    return app.openapi_schema


app.openapi = openapi  # type: ignore[method-assign]


def _options(values) -> str:
    return "".join(f'<option value="{html.escape(v)}">{html.escape(v)}</option>' for v in values)


@cache
def page_html() -> str:
    """The page with the library's names filled in."""
    values = {
        "__API_URL_PREFIX__": json.dumps(API_URL_PREFIX),
        "__IMPORT_DAG_ID__": json.dumps(IMPORT_DAG_ID),
        "__FINISHED__": json.dumps(list(statuses.FINISHED)),
        "__CHANNEL_OPTIONS__": _options(CHANNELS),
        "__TAG_MODE_OPTIONS__": _options(TAG_MODES),
    }
    text = PAGE.read_text(encoding="utf-8")
    for name, value in values.items():
        text = text.replace(name, value)
    return text


@app.get(PAGE_PATH, include_in_schema=False, response_class=HTMLResponse)
def page() -> HTMLResponse:
    """The Contact imports page; its calls to the API carry the Airflow UI's session cookie."""
    return HTMLResponse(page_html())
