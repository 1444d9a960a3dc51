"""The upload API when Airflow's REST API hangs (a busy single-worker API server) or
fails, and when the API server stops in the middle of an upload (docs/operations.md#faults).
Airflow is a server on localhost that never answers or answers 500; the API server is
uvicorn, in a thread or in a process that is killed; the CDP database is real."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import timedelta

import httpx
import pytest
from fastapi.testclient import TestClient

from contact_import import db, imports, intake, statuses, tasks
from contact_import.endpoints import API_URL_PREFIX, PLUGIN_PREFIX
from tests.faulty_servers import failing_server, silent_server
from tests.helpers import ROOT, csv_bytes, ctx, exported, free_port, multipart_stream, upload
from tests.plugin_server import app_for, served, wait_until_up

sys.path.insert(0, str(ROOT / "plugins"))  # as Airflow does with its plugins folder

from contact_imports_api import airflow_client, runs, sweep  # noqa: E402
from contact_imports_api.app import app  # noqa: E402

API = API_URL_PREFIX
BUDGET = "1.5"  # CONTACT_IMPORT_AIRFLOW_TIMEOUT here: what a call to an Airflow that hangs costs at most
HANG_GUARD = 120  # seconds a client waits for an answer before the test fails (a hang, not a timing)


@pytest.fixture(autouse=True)
def own_storage(monkeypatch, tmp_path):
    """Import folders of this test alone: the sweep takes any folder its database does not know for an orphan."""
    monkeypatch.setenv("CONTACT_IMPORT_STORAGE", str(tmp_path / "files"))


@pytest.fixture(params=["hangs", "answers 500"])
def broken_airflow(request, monkeypatch):
    """AIRFLOW_API_URL: an Airflow REST API that hangs, or one that answers 500."""
    monkeypatch.setenv("CONTACT_IMPORT_AIRFLOW_TIMEOUT", BUDGET)
    # Airflow's metadata database is not the part failing here: it recorded nobody for these runs
    monkeypatch.setattr(runs, "triggering_users", lambda run_ids: {})
    if request.param == "hangs":
        with silent_server() as server:
            monkeypatch.setenv("AIRFLOW_API_URL", server.url)
            yield server.url
    else:
        with failing_server(500) as url:
            monkeypatch.setenv("AIRFLOW_API_URL", url)
            yield url


@pytest.fixture
def api(cdp_url, demo_workspace):
    yield TestClient(app_for(cdp_url))
    app.dependency_overrides.clear()


def triggered_upload(cdp_url: str, start: int = 0) -> str:
    """An upload as the API leaves it once Airflow took its trigger: waiting, with its run."""
    context = ctx(cdp_url)
    import_id = str(uuid.uuid4())
    stored = intake.upload_path(context, import_id, "contacts.csv")
    stored.write_bytes(csv_bytes(2, start=start))
    intake.record_upload(context, import_id=import_id, stored=stored, sha256="-", file_name="contacts.csv",
                         workspace="demo", channel="line", tag_mode="append", source="api")
    intake.record_run(context, import_id, airflow_client.run_id_for(import_id))
    return import_id


def test_reads_answer_the_stored_status_saying_airflow_could_not_be_asked(api, broken_airflow, cdp_url):
    waiting, ended = triggered_upload(cdp_url), triggered_upload(cdp_url, start=10)
    with db.transaction(cdp_url) as conn:
        statuses.end(conn, ended, statuses.FAILED, "a crash")
    one = api.get(f"{API}/imports/{waiting}")
    assert one.status_code == 200, one.text
    assert one.json()["status"] == "waiting" and one.json()["dag_run_id"] == f"upload__{waiting}"
    assert one.json()["airflow_unavailable"] is True and one.json()["dag_paused"] is None
    listed = api.get(f"{API}/imports")
    assert listed.status_code == 200 and listed.json()["total"] == 2
    assert {i["id"]: (i["status"], i["airflow_unavailable"]) for i in listed.json()["imports"]} == {
        waiting: ("waiting", True), ended: ("failed", True)}
    # an answer that needs nothing of Airflow's REST API does not ask it
    alone = api.get(f"{API}/imports/{ended}")
    assert alone.status_code == 200 and alone.json()["airflow_unavailable"] is False


def test_an_upload_airflow_does_not_start_answers_503_and_leaves_no_import_waiting(api, broken_airflow, cdp_url):
    refused = upload(api, csv_bytes(2))
    assert refused.status_code == 503, refused.text
    detail = refused.json()["detail"]
    assert detail.startswith("the file was not imported: Airflow's REST API at " + broken_airflow)
    assert "upload the file again" in detail
    (record,) = api.get(f"{API}/imports").json()["imports"]
    assert record["status"] == "failed" and record["message"]["text"].startswith("could not start the DAG run")
    assert record["id"] in detail
    # a run Airflow started all the same (the trigger reached it, its answer did not come back)
    # finds its import ended at its first task and imports nothing
    with pytest.raises(tasks.StageError, match="already failed"):
        tasks.detect_encoding(ctx(cdp_url), record["id"])
    assert exported(cdp_url) == {}


def test_a_cancel_airflow_does_not_hear_holds_and_its_run_imports_nothing(api, broken_airflow, cdp_url):
    waiting = triggered_upload(cdp_url)
    cancelled = api.post(f"{API}/imports/{waiting}/cancel")
    assert cancelled.status_code == 202, cancelled.text
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["airflow_unavailable"] is True
    assert api.post(f"{API}/imports/{waiting}/cancel").status_code == 409
    # the run Airflow was not told about starts later and ends at its first task
    with pytest.raises(tasks.StageError, match="already cancelled"):
        tasks.detect_encoding(ctx(cdp_url), waiting)
    assert exported(cdp_url) == {}


def test_a_call_to_airflow_that_hangs_holds_up_no_other_request(cdp_url, demo_workspace, monkeypatch):
    """One event loop (uvicorn, as in Airflow's API server): while a read waits for Airflow
    in a worker thread, the loop goes on answering; if the call ran on the loop, nothing
    else would be answered until it gave up, and the read would be answered first."""
    monkeypatch.setenv("CONTACT_IMPORT_AIRFLOW_TIMEOUT", "90")  # the read waits until the test hangs up
    monkeypatch.setattr(runs, "triggering_users", lambda run_ids: {})
    with silent_server() as airflow:
        monkeypatch.setenv("AIRFLOW_API_URL", airflow.url)
        waiting = triggered_upload(cdp_url)
        with served(cdp_url) as url:
            answers = {}
            reader = threading.Thread(target=lambda: answers.update(
                read=httpx.get(f"{url}{API}/imports/{waiting}", timeout=HANG_GUARD)))
            reader.start()
            assert airflow.accepted.wait(HANG_GUARD), "the read asks Airflow whether the DAG is paused"
            document = httpx.get(f"{url}{PLUGIN_PREFIX}/openapi.json", timeout=HANG_GUARD)
            refused = upload(httpx.Client(base_url=url, timeout=HANG_GUARD), csv_bytes(1), workspace="nope")
            listed = httpx.get(f"{url}{API}/imports", params={"status": "completed"}, timeout=HANG_GUARD)
            assert document.status_code == 200 and refused.status_code == 422 and listed.status_code == 200
            assert reader.is_alive() and "read" not in answers, "answered while the read still waits for Airflow"
            airflow.hang_up()
            reader.join(HANG_GUARD)
    assert answers["read"].status_code == 200
    assert answers["read"].json()["status"] == "waiting" and answers["read"].json()["airflow_unavailable"] is True


# ------------------------------------------------------------ the API server stopped mid-upload

@contextmanager
def server_process(cdp_url: str, **env: str):
    """The plugin's app in a uvicorn process of its own: (its URL, the process)."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "tests.plugin_server", cdp_url, str(port)], cwd=ROOT,
                               env={**os.environ, **env})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, lambda: process.poll() is None)
        yield url, process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def import_folders(cdp_url: str) -> set:
    return set((ctx(cdp_url).storage.base / "imports").glob("*"))


def wait_for(what: str, found):
    deadline = time.monotonic() + HANG_GUARD
    while not (result := found()):
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.05)
    return result


def post_in_background(url: str, **request) -> threading.Thread:
    """The client of an upload that may never be answered (its server is killed)."""
    def send():
        try:
            httpx.post(f"{url}{API}/imports", timeout=HANG_GUARD, **request)
        except httpx.HTTPError:
            pass

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    return sender


def test_a_file_cut_short_by_a_killed_api_server_is_removed_by_the_sweep(cdp_url, demo_workspace):
    before = import_folders(cdp_url)
    more = threading.Event()
    row = csv_bytes(1).split(b"\n", 1)[1]

    def blocks():
        yield csv_bytes(1)
        for _ in range(4):  # past the upload's 1 MiB batches: some of the file reaches storage
            yield row * (400_000 // len(row))
        more.wait(HANG_GUARD)  # the rest never comes: the server is killed first
        yield row

    with server_process(cdp_url) as (url, process):
        sender = post_in_background(url, headers={"Content-Type": "multipart/form-data; boundary=xYzBoundary"},
                                    content=multipart_stream(blocks(), workspace="demo", channel="line"))
        (folder,) = wait_for("part of the file in storage", lambda: [
            f for f in import_folders(cdp_url) - before if (f / "upload.csv").is_file()
            and (f / "upload.csv").stat().st_size > 0])
        process.kill()
        process.wait()
        more.set()
        sender.join(HANG_GUARD)
    with db.transaction(cdp_url) as conn:
        assert imports.count_imports(conn) == 0
    assert (folder / "upload.csv").stat().st_size < 1_700_000, "a file cut short"
    assert sweep.orphaned_folders(ctx(cdp_url)) == [], "a folder written to lately may be an upload streaming in"
    assert folder.exists()
    assert sweep.orphaned_folders(ctx(cdp_url), after=timedelta(0)) == [folder.name]
    assert not folder.exists() and import_folders(cdp_url) == before


@pytest.mark.parametrize("airflow_has_the_run", [False, True])
def test_an_upload_whose_api_server_was_killed_before_its_run_started_is_ended_or_given_its_run(
        cdp_url, demo_workspace, airflow_has_the_run):
    """Killed while the trigger waited for Airflow: the upload is stored and recorded
    `waiting`, with no run. The sweep gives it the run Airflow has, or ends it failed."""
    with silent_server() as airflow, server_process(cdp_url, AIRFLOW_API_URL=airflow.url,
                                                    CONTACT_IMPORT_AIRFLOW_TIMEOUT="600") as (url, process):
        sender = post_in_background(url, data={"workspace": "demo", "channel": "line"},
                                    files={"file": ("contacts.csv", csv_bytes(2), "text/csv")})
        assert airflow.accepted.wait(HANG_GUARD), "the upload was recorded and its trigger sent"
        process.kill()
        process.wait()
    sender.join(HANG_GUARD)
    with db.transaction(cdp_url) as conn:
        (left,) = imports.list_imports(conn)
    assert left["status"] == "waiting" and left["dag_run_id"] is None
    import_id = left["id"]
    assert ctx(cdp_url).storage.path(left["file_uri"]).read_bytes() == csv_bytes(2)

    asked = []

    def known_runs(run_ids):
        asked.append(sorted(run_ids))
        return set(run_ids) if airflow_has_the_run else set()

    assert sweep.stalled_uploads(ctx(cdp_url), known_runs) == [], "recorded just now: its trigger may be under way"
    assert asked == []
    ended = sweep.stalled_uploads(ctx(cdp_url), known_runs, after=timedelta(0))
    assert asked == [[f"upload__{import_id}"]]
    with db.transaction(cdp_url) as conn:
        record = imports.get(conn, import_id)
    if airflow_has_the_run:
        assert ended == [] and record["status"] == "waiting" and record["dag_run_id"] == f"upload__{import_id}"
    else:
        assert ended == [import_id] and record["status"] == "failed"
        assert record["message"] == sweep.STALLED_MESSAGE
    assert sweep.stalled_uploads(ctx(cdp_url), known_runs, after=timedelta(0)) == []
