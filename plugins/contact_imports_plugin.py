"""Registers the upload API with Airflow: the API server mounts it at /contact-imports."""
from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from contact_imports_api import app


class ContactImportsPlugin(AirflowPlugin):
    name = "contact_imports"
    fastapi_apps = [{"app": app, "url_prefix": "/contact-imports", "name": "Contact imports"}]
