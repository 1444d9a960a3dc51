"""Airflow's approval step as dag.test() runs it: what the Required Actions screen shows
(the file, the workspace, the counts, the first changes, a link back to the Contact imports
page), answered through the handler of Airflow's own HITL REST route, as the Reject
button does."""
from __future__ import annotations

import copy
import sys
import threading
import time

import pytest

from contact_import import db, imports, statuses
from tests.helpers import LINE_HEADER, ROOT, exported, line_id, run_stages, table_counts, write_csv

@pytest.fixture(scope="module")
def dag():
    """A copy of the DAG of this module's own: dag.test() leaves a run's conf in the values
    of the params it ran with (require_approval here), which the DAG's next runs would inherit."""
    sys.path.insert(0, str(ROOT / "dags"))
    from contact_import_dag import dag_object  # noqa: PLC0415

    return copy.deepcopy(dag_object)


class Reviewer(threading.Thread):
    """Waits for the run's approval step to ask, keeps what it shows, and answers. Whatever
    goes wrong here, the step is answered or failed: dag.test() waits for it for ever."""

    def __init__(self, answer: str):
        super().__init__(daemon=True)
        self.answer, self.shown, self.error = answer, None, None
        self.stop = threading.Event()

    def run(self):
        from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
        from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
        from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from sqlalchemy import select
        from sqlalchemy.orm import joinedload

        asking = (select(TaskInstance).where(TaskInstance.dag_id == "contact_import", TaskInstance.task_id == "approve",
                                             TaskInstance.state == "awaiting_input")
                  .options(joinedload(TaskInstance.hitl_detail)))
        while not self.stop.is_set():
            with create_session() as session:
                ti = session.scalar(asking)
                if ti is None or ti.hitl_detail is None:
                    time.sleep(0.5)
                    continue
                self.shown = {"subject": ti.hitl_detail.subject, "body": ti.hitl_detail.body,
                              "options": list(ti.hitl_detail.options)}
                try:
                    update_hitl_detail(dag_id="contact_import", dag_run_id=ti.run_id, task_id="approve",
                                       update_hitl_detail_payload=UpdateHITLDetailPayload(
                                           chosen_options=[self.answer]),
                                       user=SimpleAuthManagerUser(username="reviewer", role="admin"),
                                       session=session)
                except Exception as exc:  # noqa: BLE001  (reported by the test)
                    self.error = exc
                    session.rollback()
                    session.scalar(asking).state = "failed"
                return


def test_the_approval_step_shows_the_file_the_counts_and_the_first_changes(dag, cdp_url, demo_workspace,
                                                                           airflow_on_cdp, tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://airflow.example:8080")
    u1, u2 = line_id(1), line_id(2)
    stored = write_csv(tmp_path / "stored.csv", LINE_HEADER, [f'{u1},Ann,,,,,"VIP,新客",amy@shop.example,S001,,'])
    assert run_stages(cdp_url, stored)["status"] == statuses.COMPLETED
    before_tables, before_contacts = table_counts(cdp_url), exported(cdp_url)
    june = write_csv(tmp_path / "june.csv", LINE_HEADER, [
        f"{u1},Anne,,,,,台北,ben@shop.example,S002,,",
        f"{u2},Ben,,,,,VIP,,,,",
    ])

    reviewer = Reviewer("Reject")
    reviewer.start()
    try:
        run = dag.test(run_conf={"workspace": "demo", "channel": "line", "tag_mode": "overwrite",
                                 "file": str(june), "require_approval": True})
    finally:
        reviewer.stop.set()
        reviewer.join(timeout=30)
    assert reviewer.error is None, reviewer.error
    assert reviewer.shown is not None, "the approval step never asked"

    assert reviewer.shown["options"] == ["Approve", "Reject"]
    assert reviewer.shown["subject"] == "Import june.csv into demo: approve?"
    body = reviewer.shown["body"]
    assert "**File:** `june.csv`" in body and "**Workspace:** `demo` · channel line · tags overwrite · 2 rows" in body
    assert [line for line in body.splitlines() if line.startswith("- ") and not line.startswith("- row")] == [
        "- contacts to create: 1", "- new customers: 1", "- contacts to update: 1", "- contacts left unchanged: 0",
        "- tags to add: 2", "- tags to remove: 2", "- bindings to set: 1", "- bindings to remove: 0"]
    for line in [f"- row 2, `{u1}`: name: `Ann` → `Anne`",
                 f"- row 2, `{u1}`: tags: + `台北`, − `VIP`, − `新客`",
                 f"- row 2, `{u1}`: binding: `amy@shop.example (S001)` → `ben@shop.example (S002)`",
                 f"- row 3, `{u2}`: new contact",
                 f"- row 3, `{u2}`: tags: + `VIP`",
                 "[Open the Contact imports page](http://airflow.example:8080/plugin/contact-imports)"]:
        assert line in body.splitlines(), (line, body)

    # Rejected: the import ends cancelled, naming who rejected it, with nothing written
    with db.transaction(cdp_url) as conn:
        record = imports.get(conn, imports.list_imports(conn)[0]["id"])
    assert record["file_name"] == "june.csv" and record["dag_run_id"] == run.run_id
    assert record["status"] == statuses.CANCELLED
    assert record["message"] == "rejected in the approval step by reviewer"
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["approve"] == "success" and states["upsert_contacts"] == "skipped", states
    after_tables = table_counts(cdp_url)
    assert after_tables.pop("imports") == before_tables.pop("imports") + 1
    assert after_tables == before_tables and exported(cdp_url) == before_contacts
