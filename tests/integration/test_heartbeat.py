"""Interrupted imports: the heartbeat each runner's writes and beat thread keep, and the
derivation from it and the runner (heartbeat.py), as `status`, the resume and give-up see it."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from contact_import import cli, db, heartbeat, imports, statuses, tasks

LIVE = heartbeat.this_process()


def ended_process() -> str:
    """The runner of a process that ran and ended."""
    child = subprocess.run([sys.executable, "-c", "from contact_import import heartbeat;"
                            " print(heartbeat.this_process())"], capture_output=True, text=True, check=True)
    return child.stdout.strip()


@pytest.fixture
def running(cdp_url, demo_workspace):
    """An import put straight into a status, with a runner and a heartbeat `age` seconds old
    (set-up only: the SQL bypasses the machine)."""
    def make(status=statuses.VALIDATING, runner=None, age=600, step=imports.CHECKING) -> str:
        with db.transaction(cdp_url) as conn:
            import_id = imports.create(conn, workspace_id=demo_workspace.id, channel="line", tag_mode="append",
                                       file_uri="/nowhere/upload.csv", file_name="upload.csv", source="cli",
                                       runner=runner)
            with conn.cursor() as cur:
                cur.execute("UPDATE cdp.imports SET status = %s, step = %s,"
                            " heartbeat_at = now() - make_interval(secs => %s) WHERE id = %s",
                            (status, step, age, import_id))
        return import_id
    return make


def read(url, import_id, ended_runs=()):
    with db.transaction(url) as conn:
        return imports.summary(imports.get(conn, import_id), ended_runs)


def test_a_running_import_whose_process_ended_and_went_quiet_is_interrupted(cdp_url, running):
    gone = ended_process()
    assert heartbeat.local_alive(gone) is False and heartbeat.local_alive(LIVE) is True
    assert read(cdp_url, running(runner=gone))["interrupted"] is True
    assert read(cdp_url, running(statuses.IMPORTING, runner=gone, step=imports.IMPORTING))["interrupted"] is True
    assert read(cdp_url, running(statuses.WAITING, runner=gone, step=None))["interrupted"] is True
    # its process alive, or its heartbeat fresh: running
    assert read(cdp_url, running(runner=LIVE))["interrupted"] is False
    assert read(cdp_url, running(runner=gone, age=1))["interrupted"] is False
    # a person's turn, or ended: never interrupted
    for status in (statuses.AWAITING_APPROVAL, statuses.COMPLETED, statuses.FAILED, statuses.CANCELLED):
        assert read(cdp_url, running(status, runner=gone))["interrupted"] is False


def test_a_pid_another_process_has_now_is_a_process_gone(cdp_url, running):
    _, host, pid, started = LIVE.split(":")
    reused = f"local:{host}:{pid}:{float(started) - 3600:.2f}"
    assert heartbeat.local_alive(reused) is False
    assert read(cdp_url, running(runner=reused))["interrupted"] is True


def test_a_process_on_another_host_or_not_known_is_told_by_its_heartbeat_alone(cdp_url, running):
    elsewhere = f"local:not-{LIVE.split(':')[1]}:1:1.00"
    assert heartbeat.local_alive(elsewhere) is None and heartbeat.local_alive("local") is None
    assert read(cdp_url, running(runner=elsewhere))["interrupted"] is True
    assert read(cdp_url, running(runner="local"))["interrupted"] is True  # recorded before runners had ids
    assert read(cdp_url, running(runner=elsewhere, age=1))["interrupted"] is False


def test_an_import_under_airflow_is_interrupted_once_its_dag_run_ended(cdp_url, running):
    quiet, fresh = running(runner=heartbeat.dag_run("run_a")), running(runner=heartbeat.dag_run("run_b"), age=1)
    assert read(cdp_url, quiet)["interrupted"] is False  # the library cannot tell a run's state
    assert read(cdp_url, quiet, {"run_a"})["interrupted"] is True
    assert read(cdp_url, fresh, {"run_b"})["interrupted"] is False
    no_runner = running(runner=None)
    with db.transaction(cdp_url) as conn:
        records = [imports.get(conn, i) for i in (quiet, fresh, no_runner)]
    assert heartbeat.runs_to_ask(records) == ["run_a"]  # only the stale ones' runs are worth asking about


def test_the_threshold_is_a_setting(cdp_url, running, monkeypatch):
    import_id = running(runner=ended_process(), age=30)
    assert read(cdp_url, import_id)["interrupted"] is False  # 60 s by default
    monkeypatch.setenv("CONTACT_IMPORT_HEARTBEAT_SECONDS", "10")
    assert read(cdp_url, import_id)["interrupted"] is True


def test_progress_and_chunk_writes_are_the_heartbeat(cdp_url, running):
    import_id = running(runner=ended_process())
    with db.transaction(cdp_url) as conn:
        imports.record_progress(conn, import_id, imports.CHECKING, 10)
    assert read(cdp_url, import_id)["interrupted"] is False
    import_id = running(statuses.IMPORTING, runner=ended_process(), step=imports.IMPORTING)
    with db.transaction(cdp_url) as conn:
        imports.record_chunk(conn, import_id, 0, 10, {"created": 10}, {}, [])
    assert read(cdp_url, import_id)["interrupted"] is False
    import_id = running(runner=ended_process())
    with db.transaction(cdp_url) as conn:
        imports.start_step(conn, import_id, imports.PREVIEW)
    assert read(cdp_url, import_id)["interrupted"] is False


def test_the_beat_thread_keeps_an_import_alive_through_a_long_statement(cdp_url, running, monkeypatch):
    """A stage waiting seconds for one statement writes no progress; its beat thread beats."""
    monkeypatch.setenv("CONTACT_IMPORT_HEARTBEAT_SECONDS", "1")
    beaten, quiet = running(runner=ended_process(), age=0), running(runner=ended_process(), age=0)
    with heartbeat.beating(cdp_url, beaten), db.transaction(cdp_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_sleep(3)")
    assert read(cdp_url, beaten)["interrupted"] is False
    assert read(cdp_url, quiet)["interrupted"] is True


def test_the_beat_thread_waits_for_no_transaction_holding_the_import(cdp_url, running, monkeypatch):
    """The runner's own transaction may hold the import's row; the beat skips it rather
    than wait (that transaction writes the row, and so beats, when it commits)."""
    monkeypatch.setenv("CONTACT_IMPORT_HEARTBEAT_SECONDS", "1")
    import_id = running(runner=ended_process(), age=0)
    conn = db.connect(cdp_url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SET lock_timeout = '5s'")  # a beat that waited would fail with LockNotAvailable
        with db.transaction(cdp_url) as holder:
            imports.lock(holder, import_id)
            imports.beat(conn, import_id, 0)
    finally:
        conn.close()


def test_the_stage_an_interrupted_import_resumes_in():
    cases = [(statuses.WAITING, None, tasks.detect_encoding), (statuses.VALIDATING, imports.READING, tasks.detect_encoding),
             (statuses.VALIDATING, imports.CHECKING, tasks.validate), (statuses.VALIDATING, imports.PREVIEW, tasks.validate),
             (statuses.IMPORTING, imports.IMPORTING, tasks.upsert_contacts),
             (statuses.IMPORTING, imports.BINDING, tasks.bind_teammates)]
    for status, step, first in cases:
        left = tasks.remaining({"status": status, "step": step})
        assert left[0] is first and left[-1] is tasks.finalize, (status, step)
    assert tasks.remaining({"status": statuses.IMPORTING, "step": imports.IMPORTING}) == (
        tasks.upsert_contacts, tasks.bind_teammates, tasks.finalize)


def run(capsys, *args):
    code = cli.main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_status_shows_it_and_resume_refuses_an_import_that_is_not_interrupted(cdp_url, running, capsys):
    interrupted = running(runner=ended_process())
    code, out, _ = run(capsys, "--db", cdp_url, "status", interrupted)
    assert code == 0 and "validating (interrupted)" in out and f"contact-import resume {interrupted}" in out
    code, out, _ = run(capsys, "--db", cdp_url, "status", "--json")
    (listed,) = [i for i in json.loads(out)["imports"] if i["import_id"] == interrupted]
    assert listed["interrupted"] is True and listed["status"] == statuses.VALIDATING

    refusals = {running(runner=LIVE): "still running",
                running(runner=ended_process(), age=1): "showed it is alive",
                running(runner=heartbeat.dag_run("run_a")): "runs under Airflow",
                running(statuses.COMPLETED, runner=ended_process()): "only an interrupted import"}
    for import_id, why in refusals.items():
        for give_up in ([], ["--give-up"]):
            code, _, err = run(capsys, "--db", cdp_url, "resume", import_id, *give_up)
            assert code == cli.EXIT_INVALID and why in err, (why, err)
    with db.transaction(cdp_url) as conn:
        unchanged = [imports.get(conn, i) for i in refusals]
    assert [r["status"] for r in unchanged] == [statuses.VALIDATING] * 3 + [statuses.COMPLETED]
    assert [r["runner"] for r in unchanged[:1]] == [LIVE]


def test_give_up_ends_an_interrupted_import_failed_saying_to_run_it_again(cdp_url, running, capsys):
    import_id = running(statuses.IMPORTING, runner=ended_process(), step=imports.IMPORTING)
    code, out, _ = run(capsys, "--db", cdp_url, "resume", import_id, "--give-up", "--json")
    record = json.loads(out)
    assert code == cli.EXIT_FAILED and record["status"] == statuses.FAILED
    assert record["message"] == "interrupted: run it again to finish" and record["interrupted"] is False
    code, _, err = run(capsys, "--db", cdp_url, "resume", import_id)
    assert code == cli.EXIT_INVALID and "is failed" in err


def test_a_resume_takes_the_import_over_so_a_second_one_is_refused(cdp_url, running):
    import_id = running(runner=ended_process())
    with db.transaction(cdp_url) as conn:
        heartbeat.take_over(conn, import_id, LIVE)
    with db.transaction(cdp_url) as conn:
        assert imports.get(conn, import_id)["runner"] == LIVE
        with pytest.raises(heartbeat.NotInterrupted, match="still running"):
            heartbeat.take_over(conn, import_id, f"local:x:{os.getpid()}:0")
