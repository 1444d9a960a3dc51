"""DAG `partner_feeds` through dag.test(): one mapped scan per feed, a feed whose inbox is
missing fails alone, each new file triggers one `contact_import` run (run id from the
import, so a rerun triggers nothing twice), and settled files move to done/."""
from __future__ import annotations

import sys

import pytest

from tests.helpers import LINE_HEADER, ROOT, line_id, run_recorded, write_csv


@pytest.fixture
def feeds_dag(tmp_path, monkeypatch, demo_workspace, airflow_on_cdp):
    inbox = tmp_path / "inbox" / "acme"
    inbox.mkdir(parents=True)
    feeds_file = tmp_path / "feeds.yaml"
    feeds_file.write_text(f"""feeds:
  - name: acme
    workspace: demo
    channel: line
    inbox: file://{inbox}/*.csv
    settle_seconds: 0
  - name: broken
    workspace: demo
    channel: line
    inbox: file://{tmp_path}/not-mounted/*.csv
    schedule: "*/15 * * * *"
""")
    monkeypatch.setenv("CONTACT_IMPORT_FEEDS", str(feeds_file))
    sys.path.insert(0, str(ROOT / "dags"))
    sys.modules.pop("partner_feeds_dag", None)  # the feeds file is read when the DAG file is parsed
    from partner_feeds_dag import dag_object  # noqa: PLC0415

    return dag_object, inbox


def contact_import_runs(run_ids_like: str) -> dict[str, dict]:
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        runs = session.query(DagRun).filter(DagRun.dag_id == "contact_import",
                                            DagRun.run_id.like(run_ids_like)).all()
        return {run.run_id: dict(run.conf) for run in runs}


@pytest.fixture
def import_dag():
    from contact_import_dag import dag_object  # noqa: PLC0415

    return dag_object


def test_each_new_file_triggers_one_import_and_a_broken_feed_fails_alone(feeds_dag, import_dag, cdp_url):
    dag, inbox = feeds_dag
    assert set(dag.timetable.summary.split(", ")) == {"*/15 * * * *", "0 * * * *"}  # both feeds' schedules
    write_csv(inbox / "a.csv", LINE_HEADER, [f"{line_id(1)},A,,,,,,,,,"])
    write_csv(inbox / "b.csv", LINE_HEADER, [f"{line_id(2)},B,,,,,,,,,", f"{line_id(3)},C,,,,,,,,,"])

    first = dag.test()
    states = {(ti.task_id, ti.map_index): ti.state for ti in first.get_task_instances()}
    scans = {ti.rendered_map_index: ti.state for ti in first.get_task_instances() if ti.task_id == "scan"}
    assert scans == {"acme": "success", "broken": "failed"}  # the missing inbox fails its own feed only
    assert sorted(state for (task, _), state in states.items() if task == "trigger_import") == ["success"] * 2
    runs = contact_import_runs("feed__acme__%")
    assert len(runs) == 2
    assert {conf["workspace"] for conf in runs.values()} == {"demo"}
    for run_id, conf in runs.items():
        assert run_id == f"feed__acme__{conf['import_id']}"

    # One import runs through its DAG: its file moves to done/ as the run ends.
    (first_conf, second_conf) = sorted(runs.values(), key=lambda conf: conf["import_id"])
    run = import_dag.test(run_conf=first_conf)
    assert run.state == "success"
    assert len(list((inbox / "done").iterdir())) == 1
    # The other runs without Airflow (no end-of-run callback): the feed's next scan moves it.
    assert run_recorded(cdp_url, second_conf["import_id"])["status"] == "completed"
    dag.test()
    assert sorted(p.name for p in (inbox / "done").iterdir()) == ["a.csv", "b.csv"]
    assert contact_import_runs("feed__acme__%") == runs  # nothing triggered twice
