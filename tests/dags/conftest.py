"""DAG tests run dag.test() in this process: Airflow's metadata migrated, the CDP named."""
from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.fixture
def airflow_on_cdp(cdp_url, monkeypatch) -> str:
    """Airflow's (SQLite) metadata migrated and CDP_DATABASE_URL pointing at this test's CDP."""
    monkeypatch.setenv("CDP_DATABASE_URL", cdp_url)
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    return cdp_url
