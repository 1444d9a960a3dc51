"""Names the DAGs, the plugin, the CLI and the tests share: Airflow ids and URL paths."""
from __future__ import annotations

IMPORT_DAG_ID = "contact_import"
FEEDS_DAG_ID = "partner_feeds"
PLUGIN_PREFIX = "/contact-imports"  # where Airflow's API server mounts the plugin's app
API_PREFIX = "/api/v1"  # the upload API inside the app
API_URL_PREFIX = PLUGIN_PREFIX + API_PREFIX
PAGE_PATH = "/ui"  # the Contact imports page inside the app
# The page as an entry of Airflow's UI: Airflow shows an external view at /plugin/<url_route>,
# and the plugin registers the page with the url_route PLUGIN_PREFIX names.
AIRFLOW_PAGE_PATH = "/plugin/" + PLUGIN_PREFIX.strip("/")
