"""The upload API served by a real `airflow standalone`: Airflow's auth,
uploads streamed with a size limit, imports as DAG runs, Airflow's queue as `waiting`,
and cancelling through Airflow. One Airflow (tests/live/conftest.py) serves this module and the
browser test (it takes a minute to start); each test uses its own files.
"""
from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.helpers import LINE_HEADER, line_id
from tests.live.airflow_server import API, MAX_UPLOAD_MB, PASSWORD, RUN_TIMEOUT, answer_approval_step, client_for, \
    contacts_in, csv_bytes, upload, wait_for, wait_until

pytestmark = pytest.mark.live

SWEEP_TIMEOUT = 90  # the sweep's 10 s interval and 15 s grace, with room for a busy machine



def test_every_call_needs_a_valid_airflow_token(airflow):
    anonymous, forged = client_for(airflow, None), client_for(airflow, None)
    forged.headers["Authorization"] = "Bearer " + airflow.tokens["admin"][:-4] + "AAAA"
    for client in (anonymous, forged):
        assert client.get(f"{API}/imports").status_code == 401
        assert upload(client, csv_bytes(1)).status_code == 401
        assert client.get(f"{API}/templates/line.csv").status_code == 401
    assert anonymous.get("/contact-imports/docs").status_code == 200  # the OpenAPI page itself is public
    document = anonymous.get("/contact-imports/openapi.json")
    assert document.status_code == 200 and "dag_run_id" in document.json()["components"]["schemas"]["Import"][
        "properties"]


def test_a_viewer_reads_but_may_not_upload_or_cancel(airflow):
    viewer = client_for(airflow, "viewer")
    assert viewer.get(f"{API}/imports").status_code == 200
    assert upload(viewer, csv_bytes(1)).status_code == 403
    assert viewer.post(f"{API}/imports/00000000-0000-0000-0000-000000000000/cancel").status_code == 403


def test_an_upload_runs_to_completed_and_a_bad_file_has_its_error_report(airflow):
    admin = client_for(airflow, "admin")
    created = upload(admin, csv_bytes(3, start=100))
    assert created.status_code == 202, created.text
    record = created.json()
    assert record["status"] == "waiting" and record["dag_run_id"] and record["workspace"] == "demo"
    done = wait_for(airflow, admin, record["id"], {"completed", "failed", "validation_failed"})
    assert done["status"] == "completed", done
    assert done["result"]["created"] == 3 and done["processed_rows"] == done["total_rows"] == 3
    run = admin.get(f"/api/v2/dags/contact_import/dagRuns/{record['dag_run_id']}").json()
    assert run["conf"]["import_id"] == record["id"]
    assert admin.post(f"{API}/imports/{record['id']}/cancel").status_code == 409  # finished: too late

    bad = upload(admin, (LINE_HEADER + "\nUbad,Bad,not-an-email,,,,,,,,\n").encode(), name="bad.csv").json()
    failed = wait_for(airflow, admin, bad["id"], {"completed", "failed", "validation_failed"})
    assert failed["status"] == "validation_failed" and failed["errors"] == 2
    assert failed["message"]["errors_by_code"] == {"invalid_email": 1, "invalid_user_id": 1}
    assert failed["error_report"] == f"{airflow.base_url}{API}/imports/{bad['id']}/errors.csv"  # a URL, not a path
    report = admin.get(failed["error_report"])
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/csv")
    rows = report.content.decode("utf-8-sig").splitlines()
    assert rows[0] == "row,column,value,code,message" and len(rows) == 3
    assert {r.split(",")[3] for r in rows[1:]} == {"invalid_user_id", "invalid_email"}
    chinese = admin.get(f"{API}/imports/{bad['id']}/errors.csv", headers={"Accept-Language": "zh-TW,zh;q=0.9"})
    assert chinese.headers["content-language"] == "zh-TW"
    zh_rows = chinese.content.decode("utf-8-sig").splitlines()
    assert [r.split(",")[:4] for r in zh_rows[1:]] == [r.split(",")[:4] for r in rows[1:]]
    assert zh_rows[1:] != rows[1:]  # the same rows, other messages
    assert admin.get(f"{API}/imports/{record['id']}/errors.csv").status_code == 404  # a clean file has none


def test_lists_filter_by_workspace_and_status_and_unknowns_are_404(airflow):
    admin = client_for(airflow, "admin")
    listed = admin.get(f"{API}/imports", params={"workspace": "demo"}).json()["imports"]
    created = [i["created_at"] for i in listed]
    assert created == sorted(created, reverse=True)
    assert all(i["workspace"] == "demo" for i in listed)
    completed = admin.get(f"{API}/imports", params={"status": "completed"}).json()["imports"]
    assert all(i["status"] == "completed" for i in completed)
    assert admin.get(f"{API}/imports", params={"status": "bogus"}).status_code == 422
    assert admin.get(f"{API}/imports", params={"workspace": "nope"}).status_code == 404
    assert admin.get(f"{API}/imports/00000000-0000-0000-0000-000000000000").status_code == 404
    assert admin.get(f"{API}/imports/not-a-uuid").status_code == 404
    assert admin.post(f"{API}/imports/00000000-0000-0000-0000-000000000000/cancel").status_code == 404


def test_form_fields_are_checked_and_nothing_is_kept_of_a_refused_upload(airflow):
    admin = client_for(airflow, "admin")
    before = len(admin.get(f"{API}/imports", params={"limit": 1000}).json()["imports"])
    files_before = sorted((airflow.home.parent / "files" / "imports").glob("*"))
    assert upload(admin, csv_bytes(1), channel="myspace").status_code == 422
    assert upload(admin, csv_bytes(1), tag_mode="replace").status_code == 422
    assert upload(admin, csv_bytes(1), workspace="nope").status_code == 422
    assert upload(admin, csv_bytes(1), mapping="{not json").status_code == 422
    assert admin.post(f"{API}/imports", data={"workspace": "demo", "channel": "line"}).status_code in (415, 422)
    too_big = upload(admin, b"x" * (MAX_UPLOAD_MB * 2**20 + 1))
    assert too_big.status_code == 413, too_big.text
    assert len(admin.get(f"{API}/imports", params={"limit": 1000}).json()["imports"]) == before
    assert sorted((airflow.home.parent / "files" / "imports").glob("*")) == files_before


def test_templates_per_channel_and_tag_mode(airflow):
    admin = client_for(airflow, "admin")
    line = admin.get(f"{API}/templates/line.csv", params={"tag_mode": "overwrite", "workspace": "demo"})
    assert line.status_code == 200 and "attachment" in line.headers["content-disposition"]
    header = line.content.decode("utf-8-sig").splitlines()[0].split(",")
    assert header[0] == "LINE User ID" and "Binding Teammate" in header and "VIP Level" in header
    assert admin.get(f"{API}/templates/myspace.csv").status_code == 404
    assert admin.get(f"{API}/templates/line.csv", params={"workspace": "nope"}).status_code == 404


def test_a_second_upload_waits_and_cancelling_it_writes_nothing_then_a_running_one_stops(airflow):
    admin = client_for(airflow, "admin")
    before = contacts_in(airflow, "other")
    rows = 6000  # about 0.6 MB: under the limit, 60 chunks of 100 rows
    first = upload(admin, csv_bytes(rows, start=10_000), workspace="other").json()
    second = upload(admin, csv_bytes(50, start=20_000), workspace="other").json()
    running = wait_for(airflow, admin, first["id"], {"validating", "importing", "completed"})
    assert running["status"] != "completed", "the first import ended before the second could be seen waiting"
    assert admin.get(f"{API}/imports/{second['id']}").json()["status"] == "waiting"
    assert admin.get(f"/api/v2/dags/contact_import/dagRuns/{second['dag_run_id']}").json()["state"] == "queued"
    cancelled = admin.post(f"{API}/imports/{second['id']}/cancel")
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"

    importing = wait_for(airflow, admin, first["id"], {"importing", "completed"})
    assert importing["status"] == "importing", "the import finished before it could be cancelled"
    wait_until("a committed chunk", lambda: admin.get(f"{API}/imports/{first['id']}").json()["processed_rows"] > 0,
               RUN_TIMEOUT, airflow, every=0.2)
    assert admin.post(f"{API}/imports/{first['id']}/cancel").status_code == 202

    def run_state(run_id):
        return admin.get(f"/api/v2/dags/contact_import/dagRuns/{run_id}").json()["state"]
    wait_until("both runs failed", lambda: run_state(first["dag_run_id"]) == run_state(second["dag_run_id"]) == "failed",
               RUN_TIMEOUT, airflow)
    time.sleep(2)  # the stopped task records its last committed chunk as it exits
    stopped = admin.get(f"{API}/imports/{first['id']}").json()
    assert stopped["status"] == "cancelled"
    assert 0 < stopped["processed_rows"] < rows
    assert contacts_in(airflow, "other") - before == stopped["processed_rows"]  # the second wrote nothing


def test_the_cli_imports_and_cancels_through_the_api_when_airflow_api_url_is_set(airflow, tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "AIRFLOW_API_URL": airflow.base_url, "AIRFLOW_USERNAME": "admin",
           "AIRFLOW_PASSWORD": PASSWORD, "CDP_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}

    def cli(*args):
        return subprocess.run([sys.executable, "-c", "from contact_import.cli import main; raise SystemExit(main())",
                               *args], env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT)

    path = tmp_path / "cli.csv"
    path.write_bytes(csv_bytes(4, start=30_000))
    done = cli("import", str(path), "--workspace", "other", "--channel", "line", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    record = json.loads(done.stdout)
    assert record["status"] == "completed" and record["result"]["created"] == 4 and record["dag_run_id"]
    late = cli("cancel", record["id"])
    assert late.returncode == 1 and "409" in late.stdout + late.stderr
    refused = cli("import", str(path), "--workspace", "nope", "--channel", "line")
    assert refused.returncode == 2 and "nope" in refused.stderr


def test_a_killed_upsert_task_is_retried_by_airflow_and_the_import_ends_right(airflow):
    """SIGKILL to the task process (an OOM kill, a lost worker): Airflow retries the task,
    which continues after the last committed chunk; the end state is one clean import."""
    import os
    import signal
    from pathlib import Path

    admin = client_for(airflow, "admin")
    before = contacts_in(airflow, "other")
    rows = 6000
    record = upload(admin, csv_bytes(rows, start=40_000), workspace="other").json()
    run = record["dag_run_id"]
    ti_url = f"/api/v2/dags/contact_import/dagRuns/{run}/taskInstances/upsert_contacts"

    def task_process():
        ti = admin.get(ti_url)
        if ti.status_code != 200 or ti.json()["state"] != "running":
            return None
        if admin.get(f"{API}/imports/{record['id']}").json()["processed_rows"] == 0:
            return None
        title = f"airflow worker -- {ti.json()['id']}".encode()
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and (entry / "cmdline").read_bytes().startswith(title):
                    return int(entry.name)
            except OSError:
                continue
        return None

    pid = wait_until("the running upsert task's process", task_process, RUN_TIMEOUT, airflow, every=0.1)
    committed = admin.get(f"{API}/imports/{record['id']}").json()["processed_rows"]
    os.kill(pid, signal.SIGKILL)
    assert 0 < committed < rows, "the upsert ended before it could be killed"
    done = wait_for(airflow, admin, record["id"], {"completed", "failed", "cancelled"})
    assert done["status"] == "completed", done
    assert done["processed_rows"] == rows and done["result"]["created"] == rows
    assert contacts_in(airflow, "other") - before == rows
    assert admin.get(ti_url).json()["try_number"] >= 2


def test_a_queued_run_marked_failed_in_airflow_shows_its_import_cancelled(airflow):
    """Statuses follow the DAG run: failing a queued run in Airflow itself (not through this
    API) leaves no import `waiting` forever. Airflow runs no callback for that; the API
    server's sweep (every 10 s, for runs failed 15 s ago or more) ends the import cancelled."""
    admin = client_for(airflow, "admin")
    first = upload(admin, csv_bytes(3000, start=50_000), workspace="other").json()
    queued = upload(admin, csv_bytes(5, start=60_000), workspace="other").json()
    assert admin.get(f"/api/v2/dags/contact_import/dagRuns/{queued['dag_run_id']}").json()["state"] == "queued"
    marked = admin.patch(f"/api/v2/dags/contact_import/dagRuns/{queued['dag_run_id']}", json={"state": "failed"})
    assert marked.status_code == 200, marked.text
    record = wait_for(airflow, admin, queued["id"], {"cancelled", "completed", "failed"}, timeout=SWEEP_TIMEOUT)
    assert record["status"] == "cancelled" and "marked failed in Airflow" in record["message"]["text"]
    assert wait_for(airflow, admin, first["id"], {"completed", "failed", "cancelled"})["status"] == "completed"


def test_a_waiting_import_whose_dag_is_paused_says_so_and_runs_once_it_is_unpaused(airflow):
    """A paused DAG keeps its runs queued: the import tells why it waits (the page shows the
    same hint), and runs as soon as the DAG is switched on in Airflow."""
    admin, viewer = client_for(airflow, "admin"), client_for(airflow, "viewer")
    dag = "/api/v2/dags/contact_import"
    assert admin.patch(dag, json={"is_paused": True}).json()["is_paused"] is True
    try:
        created = upload(admin, csv_bytes(2, start=95_000), workspace="other")
        assert created.status_code == 202 and created.json()["dag_paused"] is True, created.text
        record = created.json()
        time.sleep(5)  # long enough for the scheduler to start an unpaused run
        waiting = admin.get(f"{API}/imports/{record['id']}").json()
        assert waiting["status"] == "waiting" and waiting["dag_paused"] is True
        (listed,) = [i for i in viewer.get(f"{API}/imports", params={"status": "waiting"}).json()["imports"]
                     if i["id"] == record["id"]]
        assert listed["dag_paused"] is True  # a viewer is told too: Airflow lets it read the DAG
    finally:
        assert admin.patch(dag, json={"is_paused": False}).json()["is_paused"] is False
    done = wait_for(airflow, admin, record["id"], {"completed", "failed", "cancelled"})
    assert done["status"] == "completed" and done["dag_paused"] is None


@pytest.mark.parametrize("answer", ["Approve", "Reject"])
def test_an_import_requiring_approval_waits_in_airflow_s_approval_step(airflow, answer):
    """The approval step answered through Airflow's REST API (what the Approve / Reject
    buttons send): approved, the import runs; rejected, it ends cancelled, nothing written."""
    admin = client_for(airflow, "admin")
    before = contacts_in(airflow, "other")
    start = 70_000 if answer == "Approve" else 80_000
    record = upload(admin, csv_bytes(7, start=start), workspace="other", require_approval="true").json()
    waiting = wait_for(airflow, admin, record["id"], {"awaiting_approval", "completed", "failed", "cancelled"})
    assert waiting["status"] == "awaiting_approval" and waiting["preview"]["created"] == 7
    hitl = f"/api/v2/dags/contact_import/dagRuns/{record['dag_run_id']}/taskInstances/approve/-1/hitlDetails"

    def respond():
        detail = admin.get(hitl).json()
        assert set(detail["options"]) == {"Approve", "Reject"} and "- contacts to create: 7" in detail["body"]
        assert f"- row 2, `{line_id(start)}`: new contact" in detail["body"].splitlines()
        assert contacts_in(airflow, "other") == before  # nothing written while it waits
        answered = admin.patch(hitl, json={"chosen_options": [answer]})
        assert answered.status_code == 200, answered.text

    answer_approval_step(airflow, admin, record["dag_run_id"], respond)
    done = wait_for(airflow, admin, record["id"], {"completed", "failed", "cancelled"})
    if answer == "Approve":
        assert done["status"] == "completed" and done["result"]["created"] == 7
        assert contacts_in(airflow, "other") == before + 7
    else:
        assert done["status"] == "cancelled" and "rejected" in done["message"]["text"]
        assert contacts_in(airflow, "other") == before


def test_the_contact_imports_page_is_in_airflow_s_menu_and_its_calls_work_with_the_ui_cookie(airflow):
    """Without a browser (test_contact_imports_page.py drives it in Chromium): the page is
    registered as an external view, served, and the API accepts the UI's session cookie."""
    admin = client_for(airflow, "admin")
    plugins = admin.get("/api/v2/plugins").json()["plugins"]
    (plugin,) = [p for p in plugins if p["name"] == "contact_imports"]
    assert plugin["external_views"][0]["href"] == "/contact-imports/ui"
    assert plugin["external_views"][0]["url_route"] == "contact-imports"
    page = httpx.get(f"{airflow.base_url}/contact-imports/ui")
    assert page.status_code == 200 and "Contact imports" in page.text and "聯絡人匯入" in page.text
    cookie = httpx.Client(base_url=airflow.base_url, cookies={"_token": airflow.tokens["admin"]}, timeout=60)
    assert cookie.get(f"{API}/imports").status_code == 200
    assert upload(cookie, csv_bytes(2, start=90_000), workspace="other").status_code == 202
