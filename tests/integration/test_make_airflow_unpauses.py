"""`make airflow` leaves this project's DAGs unpaused whatever ran before: a DAG keeps the
pause state it was first recorded with, and the Airflow commands that record DAGs outside
`make airflow` (`airflow dags test` under `make demo`, `airflow dags reserialize`) record them
paused. Against Airflow's real metadata database (SQLite, migrated by Airflow itself)."""
from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from contact_import.endpoints import FEEDS_DAG_ID, IMPORT_DAG_ID
from tests.helpers import ROOT

sys.path.insert(0, str(ROOT / "scripts"))

import airflow_local  # noqa: E402


def paused(home) -> dict[str, bool]:
    with sqlite3.connect(home / "airflow.db") as conn:
        return {dag_id: bool(flag) for dag_id, flag in conn.execute("SELECT dag_id, is_paused FROM dag")}


def test_dags_an_earlier_command_recorded_paused_are_unpaused_before_airflow_starts(tmp_path, monkeypatch):
    home = tmp_path / "airflow"
    monkeypatch.setenv("AIRFLOW_HOME", str(home))
    monkeypatch.delenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", raising=False)
    env = airflow_local.build_env("postgresql://cdp@localhost/cdp", 8080)
    assert airflow_local.unpause_project_dags(env) == [] and not (home / "airflow.db").exists()  # nothing yet

    # what an earlier command leaves: Airflow's own default pauses DAGs at creation
    earlier = {**env, "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True"}
    airflow = str(Path(sys.executable).parent / "airflow")
    for command in (["db", "migrate"], ["dags", "reserialize"]):
        subprocess.run([airflow, *command], env=earlier, check=True, capture_output=True, timeout=300)
    assert paused(home) == {IMPORT_DAG_ID: True, FEEDS_DAG_ID: True}

    assert airflow_local.unpause_project_dags(env) == [IMPORT_DAG_ID, FEEDS_DAG_ID]
    assert paused(home) == {IMPORT_DAG_ID: False, FEEDS_DAG_ID: False}
    assert airflow_local.unpause_project_dags(env) == []  # nothing left to do
