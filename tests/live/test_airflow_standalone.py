"""`make airflow` for real: scripts/airflow_local.py starts `airflow standalone`, and an import
triggered through Airflow's REST API runs the DAG `contact_import` to success (README.md).

Slow (about a minute): four Airflow components start, and every task is a fresh process.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.helpers import ROOT
from tests.live.airflow_server import (PARSE_TIMEOUT, PASSWORD, STARTUP_TIMEOUT, processes_using,
                                       run_sample_import, running_airflow, wait_until)

pytestmark = pytest.mark.live

def record_dags_paused(home: Path) -> None:
    """What `make demo` leaves behind: its `airflow dags test` records this project's DAGs in
    the same metadata database, paused (Airflow's default)."""
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True"}
    env.pop("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", None)
    airflow = str(Path(sys.executable).parent / "airflow")
    for command in (["db", "migrate"], ["dags", "reserialize"]):
        subprocess.run([airflow, *command], env=env, check=True, capture_output=True, timeout=300)


@pytest.fixture
def local_airflow(tmp_path, cdp_url):
    record_dags_paused(tmp_path / "airflow")
    with running_airflow(tmp_path, cdp_url) as instance:
        yield instance


def test_make_airflow_runs_an_import_triggered_through_the_api(local_airflow, cdp_url):
    airflow = local_airflow
    client = httpx.Client(base_url=airflow.base_url, timeout=30)

    version = wait_until("answer from /api/v2/version",
                         lambda: (r := client.get("/api/v2/version")).status_code == 200 and r.json(),
                         STARTUP_TIMEOUT, airflow)
    assert version["version"].startswith("3.")

    token = client.post("/auth/token", json={"username": "admin", "password": PASSWORD})
    assert token.status_code in (200, 201), token.text
    client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
    assert client.post("/auth/token", json={"username": "admin", "password": "wrong"}).status_code == 401

    dag = wait_until("DAG contact_import",
                     lambda: (r := client.get("/api/v2/dags/contact_import")).status_code == 200 and r.json(),
                     PARSE_TIMEOUT, airflow)
    # recorded paused before (record_dags_paused), unpaused by the script: an upload needs no switch
    assert dag["is_paused"] is False
    assert client.get("/api/v2/dags/partner_feeds").json()["is_paused"] is False
    assert "unpaused contact_import, partner_feeds" in airflow.output(400)

    params = client.get("/api/v2/dags/contact_import/details").json()["params"]
    assert {"line", "whatsapp"} <= set(params["channel"]["schema"]["enum"])
    assert set(params["tag_mode"]["schema"]["enum"]) == {"append", "overwrite"}
    assert {"workspace", "file", "mapping", "require_approval"} <= set(params)

    result = run_sample_import(airflow, client, cdp_url)[2]
    assert result["created"] == 6

    # A clean stop: SIGTERM to the script stops every Airflow component in time.
    assert len(processes_using(airflow.home)) >= 5  # the script, standalone, its four components: the scan sees them
    assert airflow.stop() == 0, airflow.output()
    assert not airflow.leftovers, f"Airflow processes left behind: {airflow.leftovers}"
