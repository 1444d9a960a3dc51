"""Statuses follow the DAG runs: an unfinished import whose run was marked failed in
Airflow (while queued, say, from Airflow's UI or REST API rather than this API's cancel)
ends `cancelled`, or `failed` as interrupted when its stage's process had died before
(it was validating or importing and its heartbeat is stale: heartbeat.py). Airflow runs
no DAG callback when a run is set failed that way, so the API server sweeps: one daemon thread per process, started by the first request that
reaches the CDP database (a mounted app gets no lifespan events), every INTERVAL seconds
one query of Airflow's metadata database for the unfinished imports' runs.

The sweep also clears what an API server stopped in the middle of an upload leaves
(docs/operations.md#faults): an upload recorded `waiting` whose run was never started
(STALLED after it was recorded) gets its run, if Airflow has it, or ends failed; an
import folder in storage that no import owns and that nothing wrote to for ORPHANED (a
file cut short) is removed, every FOLDERS_EVERY.

Reading an import never changes it: GET routes only read.
"""
from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterable

from contact_import import db, heartbeat, imports, intake, statuses, storage
from contact_import.context import Context

from .airflow_client import run_id_for
from .runs import dag_run, import_runs

log = logging.getLogger(__name__)

INTERVAL = 10.0  # seconds between sweeps
# An upload's trigger gives up within CONTACT_IMPORT_AIRFLOW_TIMEOUT (seconds): an upload
# still without a run well after that was left by an API server that stopped.
STALLED = timedelta(minutes=5)
STALLED_MESSAGE = "the API server stopped before it started the import's DAG run: upload the file again"
# A file streams into its folder before its import is recorded; a folder nobody wrote to
# for this long is what a stopped API server (or CLI) left of a file.
ORPHANED = timedelta(hours=1)
FOLDERS_EVERY = 600.0  # seconds between looks for orphaned folders (a listing of every import's folder)
# A run the scheduler failed because a task failed ends `failed` through the task's own
# failure callback, which runs just after the task's state reaches Airflow: a run failed
# less than GRACE ago is left to it, so a crash is not reported as a cancellation.
GRACE = timedelta(seconds=15)
MESSAGE = "its DAG run was marked failed in Airflow"

_lock = threading.Lock()
_started_in: int | None = None  # the pid whose sweep runs (a forked worker starts its own)
_thread: threading.Thread | None = None
_stop = threading.Event()


def start(get_context: Callable[[], Context], interval: float = INTERVAL) -> bool:
    """Start this process's sweep unless it runs already; True when this call started it."""
    global _started_in, _thread, _stop
    if _started_in == os.getpid():
        return False
    with _lock:
        if _started_in == os.getpid():
            return False
        _stop = threading.Event()
        _thread = threading.Thread(target=_loop, args=(get_context, interval, _stop),
                                   name="contact-imports-sweep", daemon=True)
        _thread.start()
        _started_in = os.getpid()
        return True


def stop() -> None:
    """Stop this process's sweep (tests); the next start() starts a new one."""
    global _started_in
    with _lock:
        _stop.set()
        if _thread is not None and _started_in == os.getpid():
            _thread.join(timeout=30)
        _started_in = None


def _loop(get_context: Callable[[], Context], interval: float, stopped: threading.Event) -> None:
    last_error = None
    folders_due = time.monotonic()
    while not stopped.is_set():
        try:
            ctx = get_context()
            ended = sweep(ctx)
            if ended:
                log.info("ended imports whose DAG run failed in Airflow or never started: %s", ", ".join(ended))
            if time.monotonic() >= folders_due:
                removed = orphaned_folders(ctx)
                if removed:
                    log.info("removed import folders no import owns (uploads cut short): %s", ", ".join(removed))
                folders_due = time.monotonic() + FOLDERS_EVERY
            last_error = None
        except Exception as exc:  # the database may be down for a while: say so once, keep sweeping
            if repr(exc) != last_error:
                log.warning("the contact imports sweep failed (retrying every %.0fs): %s", interval, exc)
                last_error = repr(exc)
        stopped.wait(interval)


def sweep(ctx: Context, failed_runs: Callable[[Iterable[str]], set[str]] | None = None,
          known_runs: Callable[[Iterable[str]], set[str]] | None = None) -> list[str]:
    """End the unfinished imports whose DAG run has failed, and the uploads whose run
    never started (stalled_uploads); returns the ids of the imports ended."""
    return [*failed_imports(ctx, failed_runs), *stalled_uploads(ctx, known_runs)]


def failed_imports(ctx: Context, failed_runs: Callable[[Iterable[str]], set[str]] | None = None) -> list[str]:
    """End the unfinished imports whose DAG run has failed: failed when their heartbeat
    says the run died while they ran (heartbeat.py), else cancelled; returns their ids."""
    runs = unfinished_runs(ctx)
    if not runs:
        return []
    ended = []
    for run_id in sorted((failed_runs or failed_in_airflow)(sorted(runs))):
        import_id = runs[run_id]
        with db.transaction(ctx.cdp_url) as conn:
            try:
                record = imports.get(conn, import_id)
                died = record["status"] in statuses.RUNNING and heartbeat.stale(record)
                if died:
                    ended_now = statuses.end(conn, import_id, statuses.FAILED, heartbeat.GIVE_UP_MESSAGE)
                else:
                    ended_now = statuses.end(conn, import_id, statuses.CANCELLED, MESSAGE)
                if ended_now:
                    ended.append(import_id)
            except imports.ImportNotFound:
                pass
    return ended


def unfinished_runs(ctx: Context) -> dict[str, str]:
    """dag_run_id -> import id of the unfinished imports that have a DAG run."""
    with db.transaction(ctx.cdp_url) as conn:
        return imports.unfinished_runs(conn, statuses.FINISHED)


def failed_in_airflow(run_ids: Iterable[str]) -> set[str]:
    """The runs of the import DAG among `run_ids` that are failed (for GRACE at least):
    one query of Airflow's metadata database through Airflow's ORM."""
    from sqlalchemy import or_

    run, state = dag_run()
    before = datetime.now(timezone.utc) - GRACE
    return import_runs(run_ids, run.state == state.FAILED, or_(run.end_date.is_(None), run.end_date <= before))


def stalled_uploads(ctx: Context, known_runs: Callable[[Iterable[str]], set[str]] | None = None,
                    after: timedelta = STALLED) -> list[str]:
    """Uploads recorded `waiting` without a DAG run for `after`: the API server stopped
    between recording the upload and recording its run. A run Airflow has (triggered just
    before the stop) is recorded and goes on; otherwise the import ends failed. Returns
    the ids of the imports ended."""
    with db.transaction(ctx.cdp_url) as conn:
        stalled = imports.stalled(conn, "api", after.total_seconds())
    if not stalled:
        return []
    started = (known_runs or runs_in_airflow)([run_id_for(import_id) for import_id in stalled])
    ended = []
    for import_id in stalled:
        if run_id_for(import_id) in started:
            intake.record_run(ctx, import_id, run_id_for(import_id))
            continue
        with db.transaction(ctx.cdp_url) as conn:
            try:
                if statuses.end(conn, import_id, statuses.FAILED, STALLED_MESSAGE):
                    ended.append(import_id)
            except imports.ImportNotFound:
                pass
    return ended


def orphaned_folders(ctx: Context, after: timedelta = ORPHANED) -> list[str]:
    """Remove the import folders in storage that no import owns and nothing changed in for
    `after`: a file an API server or a CLI was storing when it stopped, before its import
    was recorded. Returns their names (the import ids they were for)."""
    root = ctx.storage.base / "imports"
    if not root.exists():
        return []
    names = [p.name for p in root.iterdir() if _is_import_id(p.name)]
    if not names:
        return []
    with db.transaction(ctx.cdp_url) as conn:
        owned = imports.recorded(conn, names)
    before = datetime.now(timezone.utc) - after
    removed = []
    for name in sorted(set(names) - owned):
        folder = root / name
        changed = storage.last_change(folder)
        if changed is not None and changed <= before:
            with db.transaction(ctx.cdp_url) as conn:  # recorded since the listing: not an orphan
                if imports.recorded(conn, [name]):
                    continue
            storage.remove_tree(folder)
            removed.append(name)
    return removed


def _is_import_id(name: str) -> bool:
    try:
        return str(uuid.UUID(name)) == name
    except ValueError:
        return False


def runs_in_airflow(run_ids: Iterable[str]) -> set[str]:
    """The runs of the import DAG among `run_ids` that Airflow has, in any state: one
    query of Airflow's metadata database through Airflow's ORM."""
    return import_runs(run_ids)
