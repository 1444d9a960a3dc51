"""The sweep's one query of Airflow's metadata database, through Airflow's ORM, on a
migrated (SQLite) metadata database: which runs of the import DAG are failed."""
from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from contact_import.endpoints import FEEDS_DAG_ID, IMPORT_DAG_ID
from tests.helpers import ROOT

sys.path.insert(0, str(ROOT / "plugins"))  # as Airflow does with its plugins folder

from contact_imports_api import runs, sweep  # noqa: E402


@pytest.fixture(scope="module")
def airflow_metadata():
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)


def add_runs(*runs):
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.types import DagRunType

    now = datetime.now(timezone.utc)
    with create_session() as session:
        for dag_id, run_id, state, ended in runs:
            run = DagRun(dag_id=dag_id, run_id=run_id, run_type=DagRunType.MANUAL, state=state, run_after=now)
            run.end_date = ended
            session.add(run)


def test_only_failed_runs_of_the_import_dag_that_ended_a_while_ago(airflow_metadata):
    from airflow.utils.state import DagRunState

    now = datetime.now(timezone.utc)
    earlier = now - sweep.GRACE - timedelta(seconds=5)
    ids = {name: f"{name}_{uuid.uuid4().hex[:8]}" for name in ("failed", "just_failed", "queued", "success",
                                                               "other_dag")}
    add_runs((IMPORT_DAG_ID, ids["failed"], DagRunState.FAILED, earlier),
             (IMPORT_DAG_ID, ids["just_failed"], DagRunState.FAILED, now),
             (IMPORT_DAG_ID, ids["queued"], DagRunState.QUEUED, None),
             (IMPORT_DAG_ID, ids["success"], DagRunState.SUCCESS, earlier),
             (FEEDS_DAG_ID, ids["other_dag"], DagRunState.FAILED, earlier))
    assert sweep.failed_in_airflow([*ids.values(), "no_such_run"]) == {ids["failed"]}
    assert sweep.failed_in_airflow([]) == set()


def test_the_runs_of_the_import_dag_that_ended(airflow_metadata):
    """What tells an import under Airflow interrupted: its run ended, either way."""
    from airflow.utils.state import DagRunState

    now = datetime.now(timezone.utc)
    ids = {name: f"{name}_{uuid.uuid4().hex[:8]}" for name in ("failed", "success", "running", "queued", "other_dag")}
    add_runs((IMPORT_DAG_ID, ids["failed"], DagRunState.FAILED, now),
             (IMPORT_DAG_ID, ids["success"], DagRunState.SUCCESS, now),
             (IMPORT_DAG_ID, ids["running"], DagRunState.RUNNING, None),
             (IMPORT_DAG_ID, ids["queued"], DagRunState.QUEUED, None),
             (FEEDS_DAG_ID, ids["other_dag"], DagRunState.FAILED, now))
    assert runs.ended([*ids.values(), "no_such_run"]) == {ids["failed"], ids["success"]}
    assert runs.ended([]) == set()


def test_the_runs_of_the_import_dag_airflow_has_in_any_state(airflow_metadata):
    from airflow.utils.state import DagRunState

    ids = {name: f"upload__{uuid.uuid4()}" for name in ("queued", "running", "failed", "other_dag")}
    add_runs((IMPORT_DAG_ID, ids["queued"], DagRunState.QUEUED, None),
             (IMPORT_DAG_ID, ids["running"], DagRunState.RUNNING, None),
             (IMPORT_DAG_ID, ids["failed"], DagRunState.FAILED, datetime.now(timezone.utc)),
             (FEEDS_DAG_ID, ids["other_dag"], DagRunState.QUEUED, None))
    assert sweep.runs_in_airflow([*ids.values(), "upload__never-triggered"]) == {ids["queued"], ids["running"],
                                                                                  ids["failed"]}
    assert sweep.runs_in_airflow([]) == set()
