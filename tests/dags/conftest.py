"""DAG tests run dag.test() in this process: Airflow's metadata migrated, the CDP named."""
from __future__ import annotations

import subprocess
import sys

import pytest

from contact_import.context import connection_json


@pytest.fixture
def airflow_on_cdp(cdp_url, monkeypatch) -> str:
    """Airflow's (SQLite) metadata migrated and connection cdp_default naming this test's CDP."""
    monkeypatch.setenv("AIRFLOW_CONN_CDP_DEFAULT", connection_json(cdp_url))
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    return cdp_url
