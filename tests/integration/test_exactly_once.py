"""Exactly-once: a killed upsert resumes after its last committed chunk and ends where a
clean run ends; a killed `contact-import import` is shown interrupted and `contact-import
resume` ends it there too; two imports into one workspace serialise."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from contact_import import db, import_folder, imports, intake, statuses, tasks, unchanged, upsert, workspaces
from tests.helpers import EXAMPLES, LINE_HEADER, ctx, exported, line_id, run_stages, write_csv


def big_file(path, rows=3000):
    lines = []
    for n in range(rows):
        k = n - 7 if n % 20 == 19 else n  # every 20th row shares an earlier row's profile
        if n % 100 == 3 and n > 100:
            k = n - 50  # and some rows one of the chunk before (100 rows a chunk)
        lines.append(f"{line_id(n)},Person {n},user{k}@example.com,8869{k:08d},,,\"T{n % 5},T{n % 3}\",,,,{n}")
    return write_csv(path, LINE_HEADER, lines)


def prepared_import(url, path, require_approval=False):
    """An import validated and ready for upsert_contacts (what the DAG has done by then)."""
    import_id = intake.create_import(ctx(url), workspace="demo", channel="line", tag_mode="append", file=str(path),
                                     require_approval=require_approval)
    for stage in (tasks.detect_encoding, tasks.map_columns, tasks.validate):
        stage(ctx(url), import_id)
    return import_id


def warnings_report(record: dict) -> list[str]:
    return (Path(record["work_dir"]) / import_folder.WARNINGS).read_text(encoding="utf-8-sig").splitlines()


def processed(url, import_id):
    with db.transaction(url) as conn:
        return imports.get(conn, import_id)["processed_rows"]


@pytest.mark.parametrize("kill_after_rows", [100, 1300, 2700])
def test_a_killed_upsert_resumes_and_ends_like_one_clean_run(cdp_url, second_cdp_url, demo_workspace, tmp_path,
                                                             kill_after_rows, monkeypatch):
    monkeypatch.setenv("CONTACT_IMPORT_CHUNK_ROWS", "100")
    path = big_file(tmp_path / "big.csv")
    import_id = prepared_import(cdp_url, path, require_approval=True)  # with a preview to compare with
    _kill_upsert_after(cdp_url, import_id, kill_after_rows)
    done_before_retry = processed(cdp_url, import_id)
    assert done_before_retry % 100 == 0 and done_before_retry >= min(kill_after_rows, 3000)
    # the retry: the same tasks again, as Airflow would run them
    for stage in (tasks.upsert_contacts, tasks.bind_teammates, tasks.finalize):
        stage(ctx(cdp_url), import_id)
    with db.transaction(cdp_url) as conn:
        record = imports.get(conn, import_id)
    assert record["status"] == statuses.COMPLETED and record["processed_rows"] == 3000
    assert record["result"]["created"] == 3000
    assert record["result"] == record["preview"]
    resumed = exported(cdp_url)

    # one clean run of the same file in a fresh database
    with db.transaction(second_cdp_url) as conn:
        workspaces.apply(conn, workspaces.load_file(EXAMPLES / "demo-workspace.yaml"))
    clean = run_stages(second_cdp_url, path)
    assert clean["result"] == record["result"]
    assert clean["warnings"] == record["warnings"] and record["warnings"]["profile_shared"] > 0
    assert warnings_report(clean) == warnings_report(record), "a resumed upsert reports the warnings of a clean run"
    clean_contacts = exported(second_cdp_url)
    assert _without_ids(resumed) == _without_ids(clean_contacts)
    assert _profiles(resumed) == _profiles(clean_contacts)


def _kill_upsert_after(url, import_id, rows):
    child = subprocess.Popen([sys.executable, "-c", "import sys; from contact_import import context, tasks;"
                              " tasks.upsert_contacts(context.for_command_line(sys.argv[1]), sys.argv[2])", url, import_id])
    deadline = time.monotonic() + 120
    while processed(url, import_id) < rows and child.poll() is None:
        assert time.monotonic() < deadline, "the upsert made no progress"
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()


def _contact_import(url, *args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "contact_import.cli", "--db", url, *map(str, args)], **kwargs)


@pytest.mark.parametrize("killed_in", ["validation", "upsert"])
def test_a_killed_local_import_is_shown_interrupted_and_resumes_to_the_end_of_a_clean_one(
        cdp_url, second_cdp_url, demo_workspace, tmp_path, monkeypatch, killed_in):
    """kill -9 of a local `contact-import import` (its DAG run's process dies with it): within
    a minute `status` shows the import interrupted (here with a 2 s heartbeat threshold), and
    `contact-import resume` carries it on to where one clean import of the file ends."""
    monkeypatch.setenv("CONTACT_IMPORT_HEARTBEAT_SECONDS", "2")
    monkeypatch.setenv("CONTACT_IMPORT_CHUNK_ROWS", "100")
    if killed_in == "validation":
        monkeypatch.setenv("CONTACT_IMPORT_VALIDATE_CHUNK_ROWS", "100")
    path = big_file(tmp_path / "big.csv")
    command = _contact_import(cdp_url, "import", path, "--workspace", "demo", "--channel", "line",
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if killed_in == "validation":
        def far_enough(r):
            return r["status"] == statuses.VALIDATING and r["step"] == imports.CHECKING and r["step_rows"] >= 500
    else:
        def far_enough(r):
            return r["processed_rows"] >= 1300
    record = None
    deadline = time.monotonic() + 600  # Airflow starts first (migrating its metadata in a fresh home)
    while command.poll() is None and not (record and far_enough(record)):
        assert time.monotonic() < deadline, "the import made no progress"
        with db.transaction(cdp_url) as conn:
            record = next(iter(imports.list_imports(conn)), None)
        time.sleep(0.01)
    assert command.poll() is None, f"the import ended before it could be killed: {record and record['status']}"
    os.kill(command.pid, signal.SIGKILL)
    command.wait()
    import_id = record["id"]

    deadline = time.monotonic() + 60
    while True:
        status = _contact_import(cdp_url, "status", import_id, "--json", stdout=subprocess.PIPE, text=True)
        shown = json.loads(status.communicate()[0])
        if shown["interrupted"]:
            break
        assert time.monotonic() < deadline, f"not shown interrupted within a minute: {shown}"
        time.sleep(0.2)
    assert shown["status"] == (statuses.VALIDATING if killed_in == "validation" else statuses.IMPORTING)
    if killed_in == "upsert":
        assert 1300 <= shown["processed_rows"] < 3000

    resume = _contact_import(cdp_url, "resume", import_id, "--json", stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    out, err = resume.communicate(timeout=600)
    assert resume.returncode == 0, err
    assert json.loads(out)["status"] == statuses.COMPLETED and not json.loads(out)["interrupted"]
    with db.transaction(cdp_url) as conn:
        record = imports.get(conn, import_id)
    assert record["processed_rows"] == 3000

    with db.transaction(second_cdp_url) as conn:
        workspaces.apply(conn, workspaces.load_file(EXAMPLES / "demo-workspace.yaml"))
    clean = run_stages(second_cdp_url, path)
    assert clean["status"] == statuses.COMPLETED and record["result"] == clean["result"]
    assert record["result"]["created"] == 3000
    assert record["warnings"] == clean["warnings"] and record["warnings"]["profile_shared"] > 0
    assert warnings_report(record) == warnings_report(clean)
    resumed, clean_contacts = exported(cdp_url), exported(second_cdp_url)
    assert _without_ids(resumed) == _without_ids(clean_contacts)
    assert _profiles(resumed) == _profiles(clean_contacts)


def test_the_cdp_database_lost_mid_upsert_fails_the_task_clearly_and_the_retry_ends_exactly(
        cdp_url, second_cdp_url, demo_workspace, tmp_path, monkeypatch):
    """A restart of the CDP database as the upsert's session meets it: the server ends the
    session part-way (pg_terminate_backend, from another session). The task fails with a
    clear error, which Airflow retries; the committed chunks stay; the retry ends where one
    clean run of the file ends."""
    monkeypatch.setenv("CONTACT_IMPORT_CHUNK_ROWS", "100")
    path = big_file(tmp_path / "big.csv")
    import_id = prepared_import(cdp_url, path)
    child = subprocess.Popen([sys.executable, "-c", "import sys; from contact_import import context, tasks;"
                              " tasks.run(tasks.upsert_contacts, context.for_command_line(sys.argv[1]), sys.argv[2])",
                              cdp_url, import_id], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while processed(cdp_url, import_id) < 1000 and child.poll() is None:
        assert time.monotonic() < deadline, "the upsert made no progress"
        time.sleep(0.01)
    with db.transaction(cdp_url) as conn, conn.cursor() as cur:
        # the upsert's session: the one holding its workspace's lock
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND classid::bigint = %s AND objid::bigint = %s", (upsert.LOCK_NAMESPACE, demo_workspace.id))
        assert cur.fetchall() == [(True,)]
    _, stderr = child.communicate(timeout=120)
    assert child.returncode == 1, stderr
    assert "DatabaseLost: the connection to the CDP database was lost during upsert_contacts" in stderr
    assert "Airflow's retry resumes after the last of them" in stderr
    with db.transaction(cdp_url) as conn:
        record = imports.get(conn, import_id)
    assert record["status"] == statuses.IMPORTING
    assert 1000 <= record["processed_rows"] < 3000
    assert record["processed_rows"] == (record["last_chunk"] + 1) * 100 == len(exported(cdp_url))

    for stage in (tasks.upsert_contacts, tasks.bind_teammates, tasks.finalize):  # Airflow's retry, and on
        stage(ctx(cdp_url), import_id)
    with db.transaction(cdp_url) as conn:
        record = imports.get(conn, import_id)
    with db.transaction(second_cdp_url) as conn:
        workspaces.apply(conn, workspaces.load_file(EXAMPLES / "demo-workspace.yaml"))
    clean = run_stages(second_cdp_url, path)
    assert record["status"] == clean["status"] == statuses.COMPLETED
    assert record["processed_rows"] == clean["processed_rows"] == 3000
    assert record["result"] == clean["result"] and record["warnings"] == clean["warnings"]
    assert warnings_report(record) == warnings_report(clean)
    assert _without_ids(exported(cdp_url)) == _without_ids(exported(second_cdp_url))
    assert _profiles(exported(cdp_url)) == _profiles(exported(second_cdp_url))


def changed_file(path, rows=3000):
    """big_file with every 7th row renamed and every 11th row's tags changed: a daily
    snapshot whose other rows the CDP holds already."""
    lines = big_file(path, rows).read_text(encoding="utf-8").splitlines()
    for n in range(1, len(lines)):
        if n % 7 == 0:
            lines[n] = lines[n].replace(f"Person {n - 1},", f"Renamed {n - 1},")
        if n % 11 == 0:
            lines[n] = lines[n].replace('"T', '"New,T', 1)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("kill_after_rows", [2700, 2800])
def test_a_killed_re_import_with_unchanged_rows_ends_like_one_clean_run(cdp_url, second_cdp_url, demo_workspace,
                                                                       tmp_path, kill_after_rows, monkeypatch):
    """The rows left out as unchanged are counted when the upsert starts; a retry resumes
    after the last committed chunk of the others and ends as a clean run does."""
    monkeypatch.setenv("CONTACT_IMPORT_CHUNK_ROWS", "100")
    with db.transaction(second_cdp_url) as conn:
        workspaces.apply(conn, workspaces.load_file(EXAMPLES / "demo-workspace.yaml"))
    first = big_file(tmp_path / "first.csv")
    for url in (cdp_url, second_cdp_url):
        assert run_stages(url, first)["status"] == statuses.COMPLETED
    snapshot = changed_file(tmp_path / "snapshot.csv")
    import_id = prepared_import(cdp_url, snapshot)
    with db.transaction(cdp_url) as conn:
        left_out = unchanged.count(Path(imports.get(conn, import_id)["work_dir"]) / import_folder.UNCHANGED)
    assert left_out > 2000, "most rows skip the full path"
    _kill_upsert_after(cdp_url, import_id, kill_after_rows)
    assert left_out <= processed(cdp_url, import_id) < 3000, "killed part-way"
    for stage in (tasks.upsert_contacts, tasks.bind_teammates, tasks.finalize):
        stage(ctx(cdp_url), import_id)
    with db.transaction(cdp_url) as conn:
        record = imports.get(conn, import_id)
    monkeypatch.setenv("CONTACT_IMPORT_UNCHANGED_SHORTCUT", "0")
    clean = run_stages(second_cdp_url, snapshot)
    assert record["status"] == clean["status"] == statuses.COMPLETED
    assert record["processed_rows"] == clean["processed_rows"] == 3000
    assert record["result"] == clean["result"] and record["result"]["updated"] > 0
    assert record["warnings"] == clean["warnings"]
    assert warnings_report(record) == warnings_report(clean)
    assert _without_ids(exported(cdp_url)) == _without_ids(exported(second_cdp_url))
    assert _profiles(exported(cdp_url)) == _profiles(exported(second_cdp_url))


def _without_ids(contacts):
    return {k: {f: v for f, v in c.items() if f != "customer_id"} for k, c in contacts.items()}


def _profiles(contacts):
    """Which contacts share a customer, independent of the ids the sequence handed out."""
    by_customer = {}
    for user_id, contact in contacts.items():
        by_customer.setdefault(contact["customer_id"], []).append(user_id)
    return sorted(sorted(group) for group in by_customer.values())


def test_two_imports_into_one_workspace_serialise_and_both_complete(cdp_url, demo_workspace, tmp_path, monkeypatch):
    monkeypatch.setenv("CONTACT_IMPORT_CHUNK_ROWS", "200")
    first = prepared_import(cdp_url, big_file(tmp_path / "a.csv", 2000))
    second_file = write_csv(tmp_path / "b.csv", LINE_HEADER,
                            [f"{line_id(n)},Renamed {n},,,,,X,,,," for n in range(0, 2000, 2)])
    second = prepared_import(cdp_url, second_file)
    errors = []

    def run(import_id):
        try:
            tasks.upsert_contacts(ctx(cdp_url), import_id)
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    for import_id in (first, second):
        tasks.bind_teammates(ctx(cdp_url), import_id)
        tasks.finalize(ctx(cdp_url), import_id)
    with db.transaction(cdp_url) as conn:
        a, b = imports.get(conn, first), imports.get(conn, second)
    assert a["status"] == b["status"] == statuses.COMPLETED
    assert a["processed_rows"] == 2000 and b["processed_rows"] == 1000
    # one import ran whole before the other: either order is fine, an interleaving is not
    contacts = exported(cdp_url)
    assert len(contacts) == 2000
    first_then_second = (a["result"]["created"], b["result"]["created"], b["result"]["updated"]) == (2000, 0, 1000)
    second_then_first = (b["result"]["created"], a["result"]["created"], a["result"]["updated"]) == (1000, 1000, 1000)
    assert first_then_second or second_then_first, (a["result"], b["result"])
    expected = "Renamed {}" if first_then_second else "Person {}"
    unshared = [n for n in range(0, 2000, 2) if n % 20 != 12]  # row n+7 shares row 12's profile (big_file)
    assert all(contacts[line_id(n)]["name"] == expected.format(n) for n in unshared)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_airflow_stopping_the_upsert_ends_it_cancelled_with_the_committed_rows(cdp_url, demo_workspace, tmp_path,
                                                                              monkeypatch, signum):
    """Airflow stops a task it marks failed or clears with SIGINT, then SIGTERM: the chunk in
    flight rolls back, committed chunks stay, processed_rows says how many."""
    monkeypatch.setenv("CONTACT_IMPORT_CHUNK_ROWS", "100")
    path = big_file(tmp_path / "big.csv")
    import_id = prepared_import(cdp_url, path)
    child = subprocess.Popen([sys.executable, "-c", "import sys; from contact_import import context, tasks;"
                              " tasks.upsert_contacts(context.for_command_line(sys.argv[1]), sys.argv[2])", cdp_url, import_id],
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while processed(cdp_url, import_id) < 500 and child.poll() is None:
        assert time.monotonic() < deadline, "the upsert made no progress"
        time.sleep(0.01)
    os.kill(child.pid, signum)
    _, stderr = child.communicate(timeout=120)
    assert child.returncode == 1, stderr  # StageError: the DAG's task fails with its message
    assert "was stopped during upsert_contacts" in stderr
    with db.transaction(cdp_url) as conn:
        record = imports.get(conn, import_id)
    contacts = exported(cdp_url)
    assert record["status"] == statuses.CANCELLED and "stopped by Airflow" in record["message"]
    assert 500 <= record["processed_rows"] < 3000
    assert len(contacts) == record["processed_rows"] == record["result"]["created"]
    # a stopped import stays stopped: Airflow running the task again does nothing
    with pytest.raises(tasks.StageError, match="cancelled"):
        tasks.upsert_contacts(ctx(cdp_url), import_id)
    assert len(exported(cdp_url)) == len(contacts)


def test_a_stop_signal_cancels_the_statement_in_flight(cdp_url):
    """A chunk's merge can run for seconds; the stop must not wait for it (Airflow sends
    SIGKILL a few seconds after SIGINT). pg_sleep stands in for a long statement."""
    code = ("import sys, psycopg2; from contact_import import interruption\n"
            "conn = psycopg2.connect(sys.argv[1])\n"
            "try:\n"
            "    with interruption.stop_on_signals(conn):\n"
            "        print('sleeping', flush=True); conn.cursor().execute('SELECT pg_sleep(600)')\n"
            "except (interruption.Stopped, psycopg2.errors.QueryCanceled) as exc:\n"
            "    print('stopped', type(exc).__name__)\n")
    child = subprocess.Popen([sys.executable, "-c", code, cdp_url], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "sleeping"
    time.sleep(0.5)  # let the statement reach the server
    os.kill(child.pid, signal.SIGINT)
    out, _ = child.communicate(timeout=300)  # a hang guard: uncancelled, the statement runs 600 s
    assert out.startswith("stopped") and child.returncode == 0


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_airflow_stopping_validation_ends_the_import_cancelled_with_nothing_written(cdp_url, demo_workspace,
                                                                                   tmp_path, signum):
    """The stages before the upsert write nothing; stopped, their import must not stay `validating`."""
    path = big_file(tmp_path / "big.csv", rows=20_000)
    import_id = intake.create_import(ctx(cdp_url), workspace="demo", channel="line", tag_mode="append", file=str(path))
    for stage in (tasks.detect_encoding, tasks.map_columns):
        stage(ctx(cdp_url), import_id)
    child = subprocess.Popen([sys.executable, "-c", "import sys; from contact_import import context, tasks;"
                              " tasks.run(tasks.validate, context.for_command_line(sys.argv[1]), sys.argv[2])", cdp_url, import_id],
                             stderr=subprocess.PIPE, text=True)
    _wait_for_stop_handlers(child)  # the stage is running with its handlers installed
    os.kill(child.pid, signum)
    _, stderr = child.communicate(timeout=120)
    with db.transaction(cdp_url) as conn:
        record = imports.get(conn, import_id)
    assert child.returncode == 1 and "was stopped during validate" in stderr, stderr
    assert record["status"] == statuses.CANCELLED and "during validate" in record["message"]
    assert exported(cdp_url) == {}


def _wait_for_stop_handlers(child, timeout=120):
    """Until the child catches SIGTERM (its default is to die): run_task's handlers are in."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and child.poll() is None:
        caught = next(line for line in open(f"/proc/{child.pid}/status") if line.startswith("SigCgt:"))
        if int(caught.split()[1], 16) & (1 << (signal.SIGTERM - 1)):
            return
        time.sleep(0.05)
    pytest.fail("the stage never installed its stop handlers")
