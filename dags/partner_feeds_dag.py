"""DAG `partner_feeds`: every feed of include/feeds.yaml scanned on its own schedule, one
`contact_import` run triggered per new file.

The DAG runs at the union of the feeds' schedules; each run scans the feeds due then
(all of them when triggered by hand). A feed's scan is its own mapped task, so a feed
whose inbox cannot be read fails alone. The library (include/contact_import/feeds.py)
decides what to take; this file only wires it to Airflow.
"""
from __future__ import annotations

from datetime import timedelta

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException
from airflow.timetables.trigger import MultipleCronTriggerTimetable

from cdp_connection import cdp_context
from contact_import import feeds
from contact_import.endpoints import FEEDS_DAG_ID, IMPORT_DAG_ID

FEEDS = feeds.load()
SCHEDULE = MultipleCronTriggerTimetable(*sorted({f.schedule for f in FEEDS}), timezone="UTC") if FEEDS else None


@dag(
    dag_id=FEEDS_DAG_ID,
    description="Scan partner inboxes and import each new file once",
    schedule=SCHEDULE,
    catchup=False,
    max_active_runs=1,  # two scans of one inbox at once would only race for the same files
    tags=["cdp", "contact-import", "feeds"],
    default_args={"retries": 1, "retry_delay": timedelta(seconds=30)},
)
def partner_feeds():
    @task
    def feeds_due() -> list[str]:
        context = get_current_context()
        run = context["dag_run"]
        if run.run_type != "scheduled":
            return [f.name for f in feeds.load()]
        at = run.run_after or context["logical_date"]
        return [f.name for f in feeds.load() if f.due(at)]

    @task(map_index_template="{{ feed_name }}")
    def scan(name: str) -> list[dict]:
        get_current_context()["feed_name"] = name  # the mapped task's label in the UI
        try:
            result = feeds.scan(cdp_context(), feeds.get(name))
        except feeds.FeedError as exc:  # unreadable inbox, unknown workspace: this feed only
            raise AirflowFailException(str(exc)) from None
        print(f"feed {name}: took {len(result['taken'])} file(s), settled {len(result['settled'])}: "
              f"{result['settled']}")
        return result["trigger"]

    @task(trigger_rule="all_done")  # the feeds that scanned fine still start their imports
    def runs_to_trigger(found) -> list[dict]:
        return [run for runs in found if runs for run in runs]

    TriggerDagRunOperator.partial(
        task_id="trigger_import", trigger_dag_id=IMPORT_DAG_ID, logical_date=None,
        skip_when_already_exists=True, wait_for_completion=False,
    ).expand_kwargs(runs_to_trigger(scan.expand(name=feeds_due())))


dag_object = partner_feeds()
