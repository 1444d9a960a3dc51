"""Registers the upload API and the Contact imports page with Airflow's API server.

The app is the package contact_imports_api/ beside this file (this folder is on
sys.path); .airflowignore keeps Airflow's plugin loader from importing its modules one
by one as plugins of their own.
"""
from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from contact_import.endpoints import PAGE_PATH, PLUGIN_PREFIX
from contact_imports_api.app import app


class ContactImportsPlugin(AirflowPlugin):
    name = "contact_imports"
    fastapi_apps = [{"app": app, "url_prefix": PLUGIN_PREFIX, "name": "Contact imports"}]
    # The page inside Airflow's UI (menu entry, iframe at /plugin/contact-imports).
    external_views = [{"name": "Contact imports", "href": PLUGIN_PREFIX + PAGE_PATH, "destination": "nav",
                       "url_route": PLUGIN_PREFIX.strip("/")}]
