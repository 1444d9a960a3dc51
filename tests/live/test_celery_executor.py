"""`make airflow-celery` for real: the same DAG on CeleryExecutor (Redis broker, PostgreSQL
metadata, docs/operations.md). scripts/airflow_local.py with AIRFLOW_LOCAL_EXECUTOR=celery starts
api-server, scheduler, dag-processor, triggerer and a Celery worker; an import triggered through
Airflow's REST API completes, and every task of the run was a Celery task the worker executed;
then a partner feed's two files become two imports, and each file moves to done/ as its run ends.

Isolation on the shared Redis (CONTACT_IMPORT_TEST_REDIS_URL, default redis://127.0.0.1:6379/0):
every key of this set-up carries a key prefix of this test's own (kombu's global_keyprefix) and
tasks go to a queue of its own, so a developer's Airflow or another test run on the same Redis
neither takes its tasks nor sees its broadcasts; its keys are deleted after. Airflow's metadata
(and Celery's results) live in a fresh database on the test PostgreSQL server.

Slow (one to two minutes): `airflow db migrate` on an empty database, five components, and every
task a fresh process.
"""
from __future__ import annotations

import os
import re
import signal
import uuid
from types import SimpleNamespace

import httpx
import pytest
import redis
from celery.states import READY_STATES
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from tests.helpers import LINE_HEADER, line_id
from tests.live.airflow_server import (PARSE_TIMEOUT, PASSWORD, RUN_TIMEOUT, STARTUP_TIMEOUT, TASKS,
                                       airflow_metadata_database, process_tree, run_sample_import,
                                       running_airflow, still_running, wait_until)

pytestmark = pytest.mark.live

REDIS_URL = os.environ.get("CONTACT_IMPORT_TEST_REDIS_URL") or "redis://127.0.0.1:6379/0"
CELERY_STARTUP_TIMEOUT = STARTUP_TIMEOUT + 120  # `airflow db migrate` of a new database comes first


@pytest.fixture
def metadata_url(pg_server):
    with airflow_metadata_database(pg_server) as url:
        yield url


@pytest.fixture
def broker():
    """The shared Redis, with a key prefix and a queue of this test's own; the prefix's keys deleted after."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3, socket_timeout=10)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        pytest.fail(f"no Redis at {REDIS_URL} ({exc}): the CeleryExecutor test needs one as broker;"
                    " start it or set CONTACT_IMPORT_TEST_REDIS_URL")
    tag = uuid.uuid4().hex[:12]
    isolated = SimpleNamespace(url=REDIS_URL, prefix=f"contact-import-test-{tag}:", queue=f"contact_import_{tag}",
                               client=client)
    try:
        yield isolated
    finally:
        for key in list(client.scan_iter(match=f"{isolated.prefix}*", count=1000)):
            client.delete(key)
        client.close()


def test_celery_executor_runs_an_import_on_the_worker(tmp_path, cdp_url, metadata_url, broker):
    inbox = tmp_path / "inbox" / "partner"
    inbox.mkdir(parents=True)
    feeds_file = tmp_path / "feeds.yaml"
    feeds_file.write_text(f"feeds:\n  - name: partner\n    workspace: demo\n    channel: line\n"
                          f"    inbox: file://{inbox}/*.csv\n    settle_seconds: 1\n")
    env = {
        "CONTACT_IMPORT_FEEDS": str(feeds_file),
        "AIRFLOW_LOCAL_EXECUTOR": "celery",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url,
        "AIRFLOW__CELERY__BROKER_URL": broker.url,
        "AIRFLOW__CELERY__RESULT_BACKEND": "",  # the script's default: the metadata database (a caller's value would win)
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX": broker.prefix,
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": broker.queue,
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
    }
    with running_airflow(tmp_path, cdp_url, env) as airflow:
        client = httpx.Client(base_url=airflow.base_url, timeout=30)
        version = wait_until("answer from /api/v2/version",
                             lambda: (r := client.get("/api/v2/version")).status_code == 200 and r.json(),
                             CELERY_STARTUP_TIMEOUT, airflow)
        assert version["version"].startswith("3.")
        token = client.post("/auth/token", json={"username": "admin", "password": PASSWORD})
        assert token.status_code in (200, 201), token.text
        client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        dag = wait_until("DAG contact_import",
                         lambda: (r := client.get("/api/v2/dags/contact_import")).status_code == 200 and r.json(),
                         PARSE_TIMEOUT, airflow)
        assert dag["is_paused"] is False

        # Each component is a process of its own (the worker starts once the API server answers), no
        # LocalExecutor anywhere.
        port = airflow.base_url.rsplit(":", 1)[1]
        components = {"api-server": f"airflow api_server -- host:127.0.0.1 port:{port}",
                      "scheduler": "airflow scheduler", "dag-processor": "airflow dag-processor",
                      "triggerer": "airflow triggerer", "worker": "airflow celery worker"}

        def all_components():
            commands = [command for _, command in process_tree(airflow.proc.pid).values()]
            return all(any(c in command for command in commands) for c in components.values()) and commands

        commands = wait_until("every component", all_components, PARSE_TIMEOUT, airflow)
        assert not [c for c in commands if "LocalExecutor" in c or "standalone" in c], commands

        # The import: the same result as on LocalExecutor.
        run_id, tis, result = run_sample_import(airflow, client, cdp_url)
        assert result["created"] == 6 and result["bound"] == 3, result

        # Where the tasks ran. The REST API: every task went to this test's queue and ran in a process.
        ran = [ti for ti in tis if ti["state"] == "success"]
        assert len(ran) == len(TASKS) - 1
        assert {ti["queue"] for ti in tis} == {broker.queue}, tis
        assert all(ti["hostname"] and ti["pid"] for ti in ran), ran
        # The metadata database: each task instance that ran is a Celery task (external_executor_id is the
        # Celery task id the CeleryExecutor sent) whose result the worker stored as SUCCESS.
        # The worker stores a task's result after the task has told Airflow it succeeded, so the last
        # task's row can still read STARTED when the run is already done: wait for final states.
        engine = create_engine(metadata_url, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                celery_ids = dict(conn.execute(text(
                    "SELECT task_id, external_executor_id FROM task_instance WHERE run_id = :run AND state = 'success'"),
                    {"run": run_id}).all())

            def final_results():
                with engine.connect() as conn:
                    stored = dict(conn.execute(text("SELECT task_id, status FROM celery_taskmeta")).all())
                return stored if all(stored.get(cid) in READY_STATES for cid in celery_ids.values()) else None

            results = wait_until("the worker's stored results", final_results, 60, airflow)
        finally:
            engine.dispose()
        assert set(celery_ids) == {ti["task_id"] for ti in ran} and all(celery_ids.values()), celery_ids
        assert {results.get(cid) for cid in celery_ids.values()} == {"SUCCESS"}, (celery_ids, results)
        # The worker's own log (its lines are prefixed by the script) received and finished each of them.
        log = airflow.log.read_text(errors="replace")
        for task_id, cid in celery_ids.items():
            assert re.search(rf"^celery-worker +\| .*Task execute_workload\[{cid}\] received", log, re.M), task_id
            assert re.search(rf"^celery-worker +\| .*Task execute_workload\[{cid}\] succeeded", log, re.M), task_id
        assert re.search(rf"^celery-worker +\| .*\.> {re.escape(broker.queue)} ", log, re.M), "worker's queues"
        # The broker: this set-up's keys carry its prefix, none is outside it.
        assert broker.client.exists(f"{broker.prefix}_kombu.binding.{broker.queue}")
        assert not broker.client.exists(f"_kombu.binding.{broker.queue}")

        # A partner feed on the same set-up: two files dropped into its inbox, the feed DAG
        # triggered by hand, one import per file, each file in done/ once its run has ended.
        for n, name in enumerate(("monday.csv", "tuesday.csv")):
            (inbox / name).write_text(f"{LINE_HEADER}\n{line_id(500 + n)},Feed {n},,,,,,,,,\n", encoding="utf-8")
        feed_run = client.post("/api/v2/dags/partner_feeds/dagRuns", json={"logical_date": None})
        assert feed_run.status_code == 200, feed_run.text

        def feed_imports_done():
            runs = [r for r in client.get("/api/v2/dags/contact_import/dagRuns").json()["dag_runs"]
                    if r["dag_run_id"].startswith("feed__partner__")]
            return runs if len(runs) == 2 and all(r["state"] in ("success", "failed") for r in runs) else None

        feed_runs = wait_until("the feed's two imports", feed_imports_done, 2 * RUN_TIMEOUT, airflow, every=2)
        assert {r["state"] for r in feed_runs} == {"success"}, feed_runs
        wait_until("both files in done/", lambda: sorted(p.name for p in (inbox / "done").glob("*.csv"))
                   == ["monday.csv", "tuesday.csv"], RUN_TIMEOUT, airflow)

        # A clean stop: SIGTERM to the script stops every component and what they started, the API
        # server included (which the helper's AIRFLOW_HOME scan cannot see).
        tree = process_tree(airflow.proc.pid)
        assert airflow.stop() == 0, airflow.output()
        assert not airflow.leftovers, f"Airflow processes left behind: {airflow.leftovers}"
        left = still_running(tree)
        for pid in left:  # descendants of this test's script, by pid and start time: ours to end
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        assert not left, f"processes left behind: {left}"
