"""The plugin's routes against a real CDP database, without Airflow: the caller and its
permissions are given, Airflow's REST API is a stand-in recording its calls (triggers and
cancels as functions, the import DAG's own record at the HTTP boundary), and the stages run
through the library (tests.helpers.run_recorded) where a test needs them."""
from __future__ import annotations

import asyncio
import hashlib
import io
import json
import sys
import threading
import time

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient

from contact_import import db, imports, intake, statuses, tasks, workspaces
from contact_import.endpoints import API_URL_PREFIX, IMPORT_DAG_ID, PLUGIN_PREFIX
from tests.helpers import (EXAMPLES, LINE_HEADER, ROOT, csv_bytes, ctx, line_id, multipart_stream, run_recorded, upload,
                           write_csv)

sys.path.insert(0, str(ROOT / "plugins"))  # as Airflow does with its plugins folder

from contact_imports_api import airflow_client, auth, cdp, runs, sweep  # noqa: E402
from contact_imports_api.app import app  # noqa: E402

API = API_URL_PREFIX


class Airflow:
    """Airflow's REST API as the routes see it."""

    def __init__(self):
        self.triggered: list[dict] = []
        self.failed: list[str] = []
        self.refuse: HTTPException | None = None
        self.paused: bool | None = False  # None: Airflow does not answer
        self.dag_reads: list[str] = []  # the Authorization header of each read of the DAG
        self.user = "alice"  # who Airflow records as triggering the runs
        self.user_reads: list[list[str]] = []  # the run ids of each read of who triggered them
        self.ended_runs: set[str] = set()  # the runs that ended
        self.ended_reads: list[list[str]] = []  # the run ids of each read of whether they ended

    def answer(self, request: httpx.Request) -> httpx.Response:
        """Airflow's REST API over HTTP: GET /api/v2/dags/<import DAG>."""
        if request.method == "GET" and request.url.path == f"/api/v2/dags/{IMPORT_DAG_ID}":
            self.dag_reads.append(request.headers.get("authorization"))
            if self.paused is None:
                raise httpx.ConnectError("connection refused", request=request)
            return httpx.Response(200, json={"dag_id": IMPORT_DAG_ID, "is_paused": self.paused})
        return httpx.Response(404, json={"detail": "not in this stand-in"})

    def trigger(self, base, who, conf):
        if self.refuse:
            raise self.refuse
        self.triggered.append(conf)
        return {"dag_run_id": f"manual__{len(self.triggered)}"}

    def fail_run(self, base, who, dag_run_id):
        self.failed.append(dag_run_id)

    def triggering_users(self, run_ids):
        """Airflow's metadata database: the runs this stand-in triggered, by self.user."""
        run_ids = [r for r in run_ids if r]
        self.user_reads.append(run_ids)
        mine = {f"manual__{n + 1}" for n in range(len(self.triggered))}
        return {run_id: self.user for run_id in run_ids if run_id in mine}


    def ended(self, run_ids):
        """Airflow's metadata database: which of these runs ended."""
        self.ended_reads.append(list(run_ids))
        return {run_id for run_id in run_ids if run_id in self.ended_runs}


@pytest.fixture
def airflow(monkeypatch):
    stand_in = Airflow()
    monkeypatch.setattr(airflow_client, "trigger", stand_in.trigger)
    monkeypatch.setattr(airflow_client, "fail_run", stand_in.fail_run)
    monkeypatch.setattr(runs, "triggering_users", stand_in.triggering_users)
    monkeypatch.setattr(runs, "ended", stand_in.ended)
    real = httpx.Client
    monkeypatch.setattr(airflow_client.httpx, "Client",
                        lambda **kwargs: real(transport=httpx.MockTransport(stand_in.answer), **kwargs))
    return stand_in


def airflow_user(name: str = "alice", role: str | None = "user") -> auth.Caller:
    """A caller as Airflow's SimpleAuthManager authenticates them (role `user` may read and
    trigger DAG runs); whether Airflow lets them use the import DAG is taken as given."""
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return auth.Caller(user=SimpleAuthManagerUser(username=name, role=role), token="a-token")


def act_as(caller: auth.Caller) -> None:
    """The routes' caller from here on."""
    app.dependency_overrides[auth.reader] = lambda: caller
    app.dependency_overrides[auth.writer] = lambda: caller


@pytest.fixture
def api(cdp_url, demo_workspace, airflow):
    act_as(airflow_user())
    app.dependency_overrides[cdp.cdp_context] = lambda: ctx(cdp_url)
    server = FastAPI()
    server.mount(PLUGIN_PREFIX, app)
    yield TestClient(server)
    app.dependency_overrides.clear()


def stored_folders(cdp_url) -> list:
    return sorted((ctx(cdp_url).storage.base / "imports").glob("*"))


def test_an_upload_is_stored_recorded_waiting_and_triggers_one_run(api, airflow, cdp_url):
    created = upload(api, csv_bytes(3), name="Mine.CSV", mapping='{"Points": null}', require_approval="yes")
    assert created.status_code == 202, created.text
    record = created.json()
    assert record["status"] == "waiting" and record["dag_run_id"] == "manual__1" and record["source"] == "api"
    assert record["file_name"] == "Mine.CSV" and record["workspace"] == "demo" and record["id"] == record["import_id"]
    (conf,) = airflow.triggered
    assert conf["import_id"] == record["id"] and conf["require_approval"] is True
    assert conf["mapping"] == {"Points": None} and conf["file"].endswith(f"{record['id']}/upload.csv")
    with open(conf["file"], "rb") as stored:
        assert stored.read() == csv_bytes(3)
    with db.transaction(cdp_url) as conn:
        row = imports.get(conn, record["id"])
    assert row["file_sha256"] == hashlib.sha256(csv_bytes(3)).hexdigest()


def test_the_stored_file_is_written_off_the_event_loop(api, monkeypatch):
    threads = []
    real = intake.upload_path

    def place(*args):
        try:
            asyncio.get_running_loop()
            threads.append("event loop")
        except RuntimeError:
            threads.append(threading.current_thread().name)
        return real(*args)

    monkeypatch.setattr(intake, "upload_path", place)
    assert upload(api, csv_bytes(2)).status_code == 202
    assert threads and "event loop" not in threads


def test_a_refused_upload_keeps_nothing(api, airflow, cdp_url, monkeypatch):
    monkeypatch.setenv("CONTACT_IMPORT_MAX_UPLOAD_MB", "1")
    before = stored_folders(cdp_url)
    assert upload(api, csv_bytes(1), channel="myspace").status_code == 422
    assert upload(api, csv_bytes(1), tag_mode="replace").status_code == 422
    refused = upload(api, csv_bytes(1), workspace="nope")
    assert refused.status_code == 422 and "nope" in refused.json()["detail"]
    assert upload(api, csv_bytes(1), mapping="{not json").status_code == 422
    assert upload(api, csv_bytes(1), mapping="[1]").status_code == 422
    assert api.post(f"{API}/imports", data={"workspace": "demo", "channel": "line"}).status_code in (415, 422)
    assert api.post(f"{API}/imports", json={"workspace": "demo"}).status_code == 415
    missing = api.post(f"{API}/imports", data={"workspace": "demo"},
                       files={"file": ("a.csv", io.BytesIO(b"x"), "text/csv")})
    assert missing.status_code == 422 and "channel" in missing.json()["detail"]
    too_big = upload(api, b"x" * (2**20 + 1))
    assert too_big.status_code == 413 and "1 MiB" in too_big.json()["detail"]
    assert api.get(f"{API}/imports").json()["imports"] == []
    assert stored_folders(cdp_url) == before and airflow.triggered == []


def test_the_size_limit_holds_while_the_file_streams_in(api, airflow, cdp_url, monkeypatch):
    monkeypatch.setenv("CONTACT_IMPORT_MAX_UPLOAD_MB", "1")
    before = stored_folders(cdp_url)
    headers = {"Content-Type": "multipart/form-data; boundary=xYzBoundary"}  # no Content-Length: chunked
    refused = api.post(f"{API}/imports", headers=headers,
                       content=multipart_stream((b"x" * 65536 for _ in range(40)), workspace="demo",
                                                channel="line"))
    assert refused.status_code == 413
    assert stored_folders(cdp_url) == before and airflow.triggered == []
    accepted = api.post(f"{API}/imports", headers=headers,
                        content=multipart_stream([csv_bytes(3)], workspace="demo", channel="line"))
    assert accepted.status_code == 202, accepted.text
    assert open(airflow.triggered[0]["file"], "rb").read() == csv_bytes(3)


def test_a_trigger_airflow_refuses_ends_the_import_failed(api, airflow):
    airflow.refuse = HTTPException(403, "Airflow answered 403: no")
    refused = upload(api, csv_bytes(1))
    assert refused.status_code == 403
    (record,) = api.get(f"{API}/imports").json()["imports"]
    assert record["status"] == "failed" and record["message"]["text"].startswith("could not start the DAG run")


def other_workspace(cdp_url, slug: str = "acme") -> None:
    """A second workspace set up like demo (the same attributes, so the same files fit)."""
    spec = workspaces.load_file(EXAMPLES / "demo-workspace.yaml")
    spec.update(workspace=slug, name="Acme Corp", default_region=None)
    with db.transaction(cdp_url) as conn:
        workspaces.apply(conn, spec)


def test_lists_filter_by_workspace_and_status_newest_first_a_page_at_a_time(api, cdp_url):
    other_workspace(cdp_url)
    ids = [upload(api, csv_bytes(1, start=n)).json()["id"] for n in range(5)]
    elsewhere = upload(api, csv_bytes(1, start=9), workspace="acme").json()["id"]
    everything = api.get(f"{API}/imports").json()
    assert [i["id"] for i in everything["imports"]] == [elsewhere, *ids[::-1]]
    assert (everything["total"], everything["offset"], everything["limit"]) == (6, 0, 100)
    listed = api.get(f"{API}/imports", params={"workspace": "demo"}).json()
    assert [i["id"] for i in listed["imports"]] == ids[::-1] and listed["total"] == 5

    # pages of 2: newest first, each import on one page only, the total on every page
    pages = [api.get(f"{API}/imports", params={"workspace": "demo", "limit": 2, "offset": offset}).json()
             for offset in (0, 2, 4, 6)]
    assert [[i["id"] for i in page["imports"]] for page in pages] == [ids[4:2:-1], ids[2:0:-1], ids[:1], []]
    assert {page["total"] for page in pages} == {5} and [page["offset"] for page in pages] == [0, 2, 4, 6]

    assert api.post(f"{API}/imports/{ids[0]}/cancel").status_code == 202
    assert api.post(f"{API}/imports/{ids[3]}/cancel").status_code == 202
    cancelled = api.get(f"{API}/imports", params={"status": "cancelled"}).json()
    assert [i["id"] for i in cancelled["imports"]] == [ids[3], ids[0]] and cancelled["total"] == 2
    several = api.get(f"{API}/imports", params=[("status", "cancelled"), ("status", "waiting"),
                                                 ("workspace", "demo"), ("limit", "3")]).json()
    assert several["total"] == 5 and len(several["imports"]) == 3
    assert api.get(f"{API}/imports", params={"status": "waiting", "workspace": "acme"}).json()["total"] == 1

    bogus = api.get(f"{API}/imports", params={"status": "bogus"})
    assert bogus.status_code == 422 and "waiting" in json.dumps(bogus.json()["detail"])
    assert api.get(f"{API}/imports", params={"limit": 0}).status_code == 422
    assert api.get(f"{API}/imports", params={"offset": -1}).status_code == 422
    unknown = api.get(f"{API}/imports", params={"workspace": "nope"})
    assert unknown.status_code == 404
    assert unknown.json()["detail"] == "no workspace 'nope': the workspaces you may use are acme, demo (GET /workspaces lists them)"
    assert api.get(f"{API}/imports/00000000-0000-0000-0000-000000000000").status_code == 404
    assert api.get(f"{API}/imports/not-a-uuid").status_code == 404


def test_each_import_says_who_uploaded_it_from_where_and_which_upload_of_its_file_name_it_is(api, airflow,
                                                                                               cdp_url, tmp_path):
    first = upload(api, csv_bytes(1), name="contacts.csv").json()
    upload(api, csv_bytes(1, start=5), name="other.csv")
    again = upload(api, csv_bytes(1, start=7), name="contacts.csv").json()
    assert (first["triggered_by"], first["source"], first["file_repeat"], first["feed"]) == ("alice", "api", 1, None)
    listed = {i["id"]: i for i in api.get(f"{API}/imports").json()["imports"]}
    assert listed[again["id"]]["file_repeat"] == 2 and listed[first["id"]]["file_repeat"] == 1
    assert {i["triggered_by"] for i in listed.values()} == {"alice"}
    assert sorted(airflow.user_reads[-1]) == ["manual__1", "manual__2", "manual__3"]  # one read for the list
    assert api.get(f"{API}/imports/{again['id']}").json()["triggered_by"] == "alice"

    # a partner feed's import names its feed; Airflow records no user for it
    from contact_import import feeds

    inbox = tmp_path / "inbox" / "acme"
    inbox.mkdir(parents=True)
    write_csv(inbox / "contacts.csv", LINE_HEADER, [f"{line_id(20)},Fed,,,,,,,,,"])
    feed = feeds.Feed(name="acme", workspace="demo", channel="line", inbox=f"file://{inbox}/*.csv", settle_seconds=0)
    (fed,) = feeds.scan(ctx(cdp_url), feed, sleep=lambda seconds: None)["taken"]
    record = api.get(f"{API}/imports/{fed}").json()
    assert (record["source"], record["feed"], record["triggered_by"]) == ("feed", "acme", None)
    assert record["file_repeat"] == 3  # the third file named contacts.csv in the workspace


def test_the_workspaces_are_listed_for_choosing_one(api, cdp_url):
    other_workspace(cdp_url)
    answer = api.get(f"{API}/workspaces")
    assert answer.status_code == 200
    assert answer.json() == {"workspaces": [
        {"slug": "acme", "name": "Acme Corp", "omo_enabled": True, "default_region": None},
        {"slug": "demo", "name": "Demo Shop", "omo_enabled": True, "default_region": "TW"}]}


def test_an_unknown_workspace_names_the_ones_there_are_and_no_command_line(api, airflow):
    refused = upload(api, csv_bytes(1), workspace="nope")
    assert refused.status_code == 422
    assert refused.json()["detail"] == "no workspace 'nope': the workspaces you may use are demo (GET /workspaces lists them)"
    assert "contact-import" not in refused.text and airflow.triggered == []
    template = api.get(f"{API}/templates/line.csv", params={"workspace": "nope"})
    assert template.status_code == 404 and "contact-import" not in template.text


def test_reading_an_import_changes_nothing(api, airflow, cdp_url):
    record = upload(api, csv_bytes(1)).json()
    for _ in range(3):
        assert api.get(f"{API}/imports/{record['id']}").json()["status"] == "waiting"
        api.get(f"{API}/imports")
    assert airflow.failed == []


def test_cancel_ends_the_import_then_fails_its_run_and_a_finished_one_is_409(api, airflow):
    record = upload(api, csv_bytes(1)).json()
    cancelled = api.post(f"{API}/imports/{record['id']}/cancel")
    assert cancelled.status_code == 202, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["message"] == {"text": "cancelled through the API", "errors_by_code": None}
    assert cancelled.json()["finished_at"] is not None
    assert cancelled.json()["triggered_by"] == "alice"  # the same import as GET answers it
    assert airflow.failed == [record["dag_run_id"]]
    again = api.post(f"{API}/imports/{record['id']}/cancel")
    assert again.status_code == 409 and "already cancelled" in again.json()["detail"]
    assert airflow.failed == [record["dag_run_id"]]
    assert api.post(f"{API}/imports/00000000-0000-0000-0000-000000000000/cancel").status_code == 404
    assert api.post(f"{API}/imports/not-a-uuid/cancel").status_code == 404


def test_a_rejected_file_s_error_report_in_the_caller_s_language(api, cdp_url):
    good = upload(api, csv_bytes(2, start=500)).json()
    bad = upload(api, (LINE_HEADER + "\nUbad,Bad,not-an-email,,,,,,,,\n").encode(), name="bad.csv").json()
    assert run_recorded(cdp_url, good["id"])["status"] == "completed"
    assert run_recorded(cdp_url, bad["id"])["status"] == "validation_failed"
    record = api.get(f"{API}/imports/{bad['id']}").json()
    assert record["status"] == "validation_failed" and record["errors"] == 2 and record["error_report"]
    report = api.get(f"{API}/imports/{bad['id']}/errors.csv")
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/csv")
    assert report.headers["content-language"] == "en"
    rows = report.content.decode("utf-8-sig").splitlines()
    assert rows[0] == "row,column,value,code,message" and len(rows) == 3
    chinese = api.get(f"{API}/imports/{bad['id']}/errors.csv", headers={"Accept-Language": "zh-TW,zh;q=0.9"})
    assert chinese.headers["content-language"] == "zh-TW" and chinese.content != report.content
    assert api.get(f"{API}/imports/{good['id']}/errors.csv").status_code == 404
    done = api.get(f"{API}/imports/{good['id']}").json()
    assert done["result"]["created"] == 2 and done["processed_rows"] == done["total_rows"] == done["rows"] == 2


def test_a_rejected_file_s_errors_are_an_object_and_its_reports_urls_of_this_api(api, cdp_url):
    bad = upload(api, (LINE_HEADER + "\nUbad,Bad,not-an-email,,,,,,,,\n").encode(), name="bad.csv").json()
    assert run_recorded(cdp_url, bad["id"])["status"] == "validation_failed"
    record = api.get(f"{API}/imports/{bad['id']}").json()
    assert record["message"]["errors_by_code"] == {"invalid_email": 1, "invalid_user_id": 1}
    assert record["message"]["text"].startswith("the file has 2 errors (invalid_email 1, invalid_user_id 1)")
    assert record["error_report"] == f"http://testserver{API}/imports/{bad['id']}/errors.csv"
    assert str(ctx(cdp_url).storage.base) not in json.dumps(record)  # no server path
    (listed,) = [i for i in api.get(f"{API}/imports").json()["imports"] if i["id"] == bad["id"]]
    assert listed == record
    report = api.get(record["error_report"])
    assert report.status_code == 200
    assert report.content.decode("utf-8-sig").splitlines()[0] == "row,column,value,code,message"
    assert record["data_docs"] == f"http://testserver{API}/imports/{bad['id']}/data_docs.html"
    page = api.get(record["data_docs"])  # GX's page, sandboxed: it may show values of the file
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Great Expectations" in page.text and page.headers["content-security-policy"].startswith("sandbox")
    good = upload(api, csv_bytes(1, start=550)).json()
    assert run_recorded(cdp_url, good["id"])["status"] == "completed"
    assert api.get(f"{API}/imports/{good['id']}").json()["data_docs"] is None
    assert api.get(f"{API}/imports/{good['id']}/data_docs.html").status_code == 404


def shared_email_file(start: int) -> bytes:
    """Two new contacts with one email: one customer, warning profile_shared on the second row."""
    rows = [LINE_HEADER] + [f"{line_id(start + n)},Person {n},shared{start}@example.com,,,,,,,," for n in range(2)]
    return ("\n".join(rows) + "\n").encode()


def warning_rows(answer) -> list[list[str]]:
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    rows = [line.split(",") for line in answer.content.decode("utf-8-sig").splitlines()]
    assert rows[0] == ["row", "column", "value", "code", "message"]
    return rows[1:]


def test_the_warnings_report_is_a_route_of_the_api_the_preview_s_then_the_import_s(api, cdp_url):
    shared = upload(api, shared_email_file(600), require_approval="true").json()
    for stage in (tasks.detect_encoding, tasks.map_columns, tasks.validate):
        stage(ctx(cdp_url), shared["id"])
    assert tasks.approval_needed(ctx(cdp_url), shared["id"])
    waiting = api.get(f"{API}/imports/{shared['id']}").json()
    assert waiting["status"] == "awaiting_approval" and waiting["warnings"] == {"profile_shared": 1}
    assert waiting["warnings_report"] == f"http://testserver{API}/imports/{shared['id']}/warnings.csv"
    (preview,) = warning_rows(api.get(waiting["warnings_report"]))
    assert (preview[0], preview[2], preview[3]) == ("3", "shared600@example.com", "profile_shared")

    for stage in (tasks.upsert_contacts, tasks.bind_teammates, tasks.finalize):
        stage(ctx(cdp_url), shared["id"])
    done = api.get(f"{API}/imports/{shared['id']}").json()
    assert done["status"] == "completed" and done["warnings_report"] == waiting["warnings_report"]
    (row,) = warning_rows(api.get(done["warnings_report"]))
    assert row[3] == "profile_shared" and row[2] == "shared600@example.com"

    clean = upload(api, csv_bytes(2, start=650)).json()
    assert run_recorded(cdp_url, clean["id"])["status"] == "completed"
    assert api.get(f"{API}/imports/{clean['id']}").json()["warnings_report"] is None
    assert api.get(f"{API}/imports/{clean['id']}/warnings.csv").status_code == 404
    assert api.get(f"{API}/imports/00000000-0000-0000-0000-000000000000/warnings.csv").status_code == 404


def test_a_waiting_import_says_when_its_dag_is_paused_in_airflow(api, airflow, cdp_url):
    airflow.paused = True
    created = upload(api, csv_bytes(1, start=700))
    assert created.status_code == 202 and created.json()["dag_paused"] is True
    waiting = created.json()["id"]
    done = upload(api, csv_bytes(1, start=710)).json()["id"]
    assert run_recorded(cdp_url, done)["status"] == "completed"
    assert api.get(f"{API}/imports/{waiting}").json()["dag_paused"] is True
    listed = {i["id"]: i for i in api.get(f"{API}/imports").json()["imports"]}
    assert listed[waiting]["dag_paused"] is True and listed[done]["dag_paused"] is None
    assert set(airflow.dag_reads) == {"Bearer a-token"}  # asked with the caller's own token

    airflow.paused = False  # unpaused in Airflow
    assert api.get(f"{API}/imports/{waiting}").json()["dag_paused"] is False
    assert api.get(f"{API}/imports/{waiting}").json()["airflow_unavailable"] is False
    airflow.paused = None  # Airflow's REST API does not answer: the import is still read
    unknown = api.get(f"{API}/imports/{waiting}")
    assert unknown.status_code == 200 and unknown.json()["dag_paused"] is None
    assert unknown.json()["airflow_unavailable"] is True and unknown.json()["status"] == "waiting"

    reads = len(airflow.dag_reads)
    assert api.get(f"{API}/imports", params={"status": "completed"}).json()["imports"]
    assert len(airflow.dag_reads) == reads  # nothing waiting: Airflow is not asked


def test_a_validating_import_shows_its_step_rows_rate_and_time_left(api, cdp_url, monkeypatch):
    from contact_import import stages

    monkeypatch.setenv("CONTACT_IMPORT_VALIDATE_CHUNK_ROWS", "4")
    created = upload(api, csv_bytes(10, start=800)).json()
    assert created["status"] == "waiting" and created["progress"] is None
    answers = []
    real = stages.validate_file

    def validate_file(*args, on_progress, **kwargs):  # read through the API after each chunk
        def chunk_done(rows):
            on_progress(rows)
            answers.append(api.get(f"{API}/imports/{created['id']}").json())
        return real(*args, on_progress=chunk_done, **kwargs)

    monkeypatch.setattr(stages, "validate_file", validate_file)
    assert run_recorded(cdp_url, created["id"])["status"] == "completed"
    assert [(a["status"], a["progress"]["step"], a["progress"]["rows_done"], a["progress"]["rows_total"])
            for a in answers] == [("validating", "checking", rows, 10) for rows in (4, 8, 10)]
    first = answers[0]["progress"]
    assert first["rows_per_second"] > 0 and first["seconds_left"] >= 0
    assert set(first) == {"step", "rows_done", "rows_total", "rows_per_second", "seconds_left"}
    done = api.get(f"{API}/imports/{created['id']}").json()
    assert done["status"] == "completed" and done["progress"] is None
    (listed,) = [i for i in api.get(f"{API}/imports").json()["imports"] if i["id"] == created["id"]]
    assert listed["progress"] is None


def test_an_import_whose_dag_run_ended_without_ending_it_is_shown_interrupted(api, airflow, cdp_url):
    created = upload(api, csv_bytes(3)).json()
    assert created["interrupted"] is False and created["heartbeat_at"]
    with db.transaction(cdp_url) as conn, conn.cursor() as cur:  # set-up: its task process died while validating
        cur.execute("UPDATE cdp.imports SET status = 'validating', heartbeat_at = now() - interval '10 minutes'"
                    " WHERE id = %s", (created["id"],))
    assert api.get(f"{API}/imports/{created['id']}").json()["interrupted"] is False  # its run still runs (a retry)
    assert airflow.ended_reads[-1] == ["manual__1"]
    airflow.ended_runs.add("manual__1")
    shown = api.get(f"{API}/imports/{created['id']}").json()
    assert shown["interrupted"] is True and shown["status"] == "validating" and shown["heartbeat_at"]
    (listed,) = api.get(f"{API}/imports").json()["imports"]
    assert listed["interrupted"] is True
    with db.transaction(cdp_url) as conn, conn.cursor() as cur:  # a retry of its task beats again
        cur.execute("UPDATE cdp.imports SET heartbeat_at = now() WHERE id = %s", (created["id"],))
    assert api.get(f"{API}/imports/{created['id']}").json()["interrupted"] is False
    assert airflow.ended_reads[-1] == []  # a fresh heartbeat: Airflow not asked


def test_templates_per_channel_tag_mode_and_workspace(api):
    line = api.get(f"{API}/templates/line.csv", params={"tag_mode": "overwrite", "workspace": "demo"})
    assert line.status_code == 200 and 'filename="line-overwrite.csv"' in line.headers["content-disposition"]
    header = line.content.decode("utf-8-sig").splitlines()[0].split(",")
    assert header[0] == "LINE User ID" and "Binding Teammate" in header and "VIP Level" in header
    plain = api.get(f"{API}/templates/whatsapp.csv").content.decode("utf-8-sig").splitlines()[0]
    assert plain.startswith("WhatsApp User ID") and "VIP Level" not in plain
    assert api.get(f"{API}/templates/myspace.csv").status_code == 404
    assert api.get(f"{API}/templates/line.csv", params={"tag_mode": "replace"}).status_code == 422
    assert api.get(f"{API}/templates/line.csv", params={"workspace": "nope"}).status_code == 404


def test_the_sweep_ends_unfinished_imports_whose_run_failed_in_airflow(api, cdp_url):
    queued, running, other, done, died = (upload(api, csv_bytes(1, start=n)).json() for n in range(5))
    with db.transaction(cdp_url) as conn:
        statuses.change(conn, running["id"], statuses.VALIDATING)
        statuses.change(conn, died["id"], statuses.VALIDATING)
        statuses.change(conn, died["id"], statuses.IMPORTING)
        statuses.end(conn, done["id"], statuses.FAILED, "a crash")
        with conn.cursor() as cur:  # set-up: its task's process died a while before its run failed
            cur.execute("UPDATE cdp.imports SET heartbeat_at = now() - interval '10 minutes' WHERE id = %s",
                        (died["id"],))
    with db.transaction(cdp_url) as conn:  # an import of the CLI: no DAG run
        no_run = intake.record_upload(ctx(cdp_url), import_id="5c0e6f2a-1111-4111-8111-111111111111",
                                      stored=ctx(cdp_url).storage.path(__file__), sha256="x", file_name="a.csv",
                                      workspace="demo", channel="line", tag_mode="append", source="cli")
    asked = []

    def failed_runs(run_ids):
        asked.append(sorted(run_ids))
        return {queued["dag_run_id"], running["dag_run_id"], done["dag_run_id"], died["dag_run_id"]} & set(run_ids)

    assert sorted(sweep.sweep(ctx(cdp_url), failed_runs)) == sorted([queued["id"], running["id"], died["id"]])
    assert asked == [sorted([queued["dag_run_id"], running["dag_run_id"], other["dag_run_id"], died["dag_run_id"]])]
    for record, expected in ((queued, "cancelled"), (running, "cancelled"), (other, "waiting"), (done, "failed")):
        now = api.get(f"{API}/imports/{record['id']}").json()
        assert now["status"] == expected, (record, now)
    assert api.get(f"{API}/imports/{queued['id']}").json()["message"]["text"] == sweep.MESSAGE
    interrupted = api.get(f"{API}/imports/{died['id']}").json()
    assert (interrupted["status"], interrupted["message"]["text"]) == ("failed", "interrupted: run it again to finish")
    assert api.get(f"{API}/imports/{no_run}").json()["status"] == "waiting"
    assert sweep.sweep(ctx(cdp_url), failed_runs) == []


def test_the_sweep_asks_airflow_nothing_without_unfinished_runs(cdp_url, demo_workspace):
    def failed_runs(run_ids):
        raise AssertionError("no query without unfinished imports")

    assert sweep.sweep(ctx(cdp_url), failed_runs) == []


def test_the_sweep_thread_starts_once_per_process_and_sweeps_until_stopped(monkeypatch):
    runs = []
    monkeypatch.setattr(sweep, "sweep", lambda context: runs.append(context) or [])
    sweep.stop()
    try:
        assert sweep.start(lambda: "ctx", interval=0.05) is True
        assert sweep.start(lambda: "ctx", interval=0.05) is False
        deadline = time.monotonic() + 5
        while len(runs) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert runs[:2] == ["ctx", "ctx"]
        (thread,) = [t for t in threading.enumerate() if t.name == "contact-imports-sweep"]
        assert thread.daemon
    finally:
        sweep.stop()
    assert not [t for t in threading.enumerate() if t.name == "contact-imports-sweep"]
