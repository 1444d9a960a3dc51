"""Registers the upload API and the Contact imports page with Airflow (API server: /contact-imports)."""
from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from contact_imports_api import app


class ContactImportsPlugin(AirflowPlugin):
    name = "contact_imports"
    fastapi_apps = [{"app": app, "url_prefix": "/contact-imports", "name": "Contact imports"}]
    # The page inside Airflow's UI (menu entry, iframe at /plugin/contact-imports).
    external_views = [{"name": "Contact imports", "href": "/contact-imports/ui", "destination": "nav",
                       "url_route": "contact-imports"}]
