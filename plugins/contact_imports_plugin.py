"""Registers the upload API and the Contact imports page with Airflow's API server.

The app is the package contact_imports_api/ beside this file (this folder is on
sys.path); .airflowignore keeps Airflow's plugin loader from importing its modules one
by one as plugins of their own.
"""
from __future__ import annotations

from base64 import b64encode

from airflow.plugins_manager import AirflowPlugin

from contact_import.endpoints import PAGE_PATH, PLUGIN_PREFIX
from contact_imports_api.app import app

# Airflow's sidebar shows a plugin's name in one line of 10px under its icon, in a 56px
# button, cut with an ellipsis: "Contact imports" showed as "Contact i…". The page's own
# heading keeps the full name.
MENU_LABEL = "Imports"


def _icon(stroke: str, halo: str) -> str:
    """A tray with an arrow going in, as a data URI (nothing fetched). Airflow shows it as an
    <img>, which cannot take the text colour its own icons take: the strokes are drawn in the
    colour of Airflow's idle icons over a halo that keeps them visible on the selected
    button's brand colour too."""
    paths = '<path d="M12 3v11"/><path d="m8 10 4 4 4-4"/><path d="M4 13v5a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2v-5"/>'
    svg = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" fill="none" stroke-linecap="round"'
           f' stroke-linejoin="round"><g stroke="{halo}" stroke-width="4" stroke-opacity="0.6">{paths}</g>'
           f'<g stroke="{stroke}" stroke-width="2">{paths}</g></svg>')
    return "data:image/svg+xml;base64," + b64encode(svg.encode()).decode()


class ContactImportsPlugin(AirflowPlugin):
    name = "contact_imports"
    fastapi_apps = [{"app": app, "url_prefix": PLUGIN_PREFIX, "name": "Contact imports"}]
    # The page inside Airflow's UI (menu entry, iframe at /plugin/contact-imports); top level
    # in the sidebar even when other plugins add views (Airflow groups those under "Plugins").
    external_views = [{"name": MENU_LABEL, "href": PLUGIN_PREFIX + PAGE_PATH, "destination": "nav",
                       "url_route": PLUGIN_PREFIX.strip("/"), "nav_top_level": True,
                       "icon": _icon("#526077", "#ffffff"), "icon_dark_mode": _icon("#a9b4c6", "#1a2233")}]
