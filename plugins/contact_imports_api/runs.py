"""What Airflow's metadata database records about the imports' DAG runs and the imports
table does not: who triggered each run (the user behind an upload, or behind the DAG's
trigger form), and whether a run ended (for telling an interrupted import). Read through
Airflow's ORM in the API server's own process, like the sweep; one query per answer, for
the imports on it."""
from __future__ import annotations

import logging
from typing import Iterable

from contact_import.endpoints import IMPORT_DAG_ID

log = logging.getLogger(__name__)


def triggering_users(run_ids: Iterable[str]) -> dict[str, str] | None:
    """run id -> the name of the Airflow user who triggered it, for the runs of the import DAG
    among `run_ids` that Airflow recorded a user for (not a feed's, not a local dag.test()).
    None when Airflow's database cannot be read: a name on a list is not worth failing it for."""
    run_ids = sorted({run_id for run_id in run_ids if run_id})
    if not run_ids:
        return {}
    try:
        from sqlalchemy import select

        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session

        with create_session() as session:
            rows = session.execute(select(DagRun.run_id, DagRun.triggering_user_name)
                                   .where(DagRun.dag_id == IMPORT_DAG_ID, DagRun.run_id.in_(run_ids)))
            return {run_id: user for run_id, user in rows if user}
    except Exception as exc:  # noqa: BLE001 - see the docstring
        log.warning("could not read who triggered the import DAG's runs: %s", exc)
        return None


def import_runs(run_ids: Iterable[str], *where) -> set[str]:
    """The runs of the import DAG among `run_ids` that meet the conditions `where` (made of
    DagRun's columns: see dag_run()): one query of Airflow's metadata database."""
    from sqlalchemy import select

    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    run_ids = sorted({run_id for run_id in run_ids if run_id})
    if not run_ids:
        return set()
    with create_session() as session:
        return set(session.scalars(select(DagRun.run_id).where(DagRun.dag_id == IMPORT_DAG_ID,
                                                               DagRun.run_id.in_(run_ids), *where)))


def dag_run():
    """Airflow's DagRun model and run states, for import_runs' conditions (imported when used:
    importing Airflow's models costs the callers that never query)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.state import DagRunState

    return DagRun, DagRunState


def ended(run_ids: Iterable[str]) -> set[str]:
    """The runs of the import DAG among `run_ids` that have ended (success or failed): an
    import whose run ended and whose heartbeat is stale is interrupted (heartbeat.py).
    set() when Airflow's database cannot be read: the import is then shown as running."""
    try:
        run, state = dag_run()
        return import_runs(run_ids, run.state.in_([state.SUCCESS, state.FAILED]))
    except Exception as exc:  # noqa: BLE001 - see the docstring
        log.warning("could not read whether the import DAG's runs ended: %s", exc)
        return set()
