"""Interrupted imports: told from the import's heartbeat and its runner
(docs/design.md#interrupted-imports).

An import that a runner owns (statuses.OWNED_BY_RUNNER) names it in `runner`:
`dag_run:<run id>` under Airflow, `local:<host>:<pid>:<process start time>` for the
command line's process. The runner's progress and chunk writes set `heartbeat_at` as they
go, and `beating` keeps it fresh in between (a large file being read, a long statement).
An import is interrupted when its heartbeat is older than CONTACT_IMPORT_HEARTBEAT_SECONDS
and its runner is gone: a local process that no longer runs on this host (for one on
another host the heartbeat is all there is to go by), a DAG run that ended. Nothing
stores it: every reader derives it, so a resumed import is simply running again.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
from contextlib import contextmanager
from typing import Any, Collection, Iterable, Iterator

import psutil
import psycopg2

from . import config, db, imports, statuses

log = logging.getLogger(__name__)

LOCAL, DAG_RUN = "local", "dag_run"
GIVE_UP_MESSAGE = "interrupted: run it again to finish"
BEATS_PER_THRESHOLD = 4  # a beat or two may be late without the import looking interrupted


class NotInterrupted(Exception):
    """The import cannot be resumed or given up: it is not interrupted; the message says why."""


def this_process() -> str:
    """The runner `local:<host>:<pid>:<start time>` of this process."""
    return f"{LOCAL}:{socket.gethostname()}:{os.getpid()}:{_started(os.getpid())}"


def dag_run(run_id: str) -> str:
    return f"{DAG_RUN}:{run_id}"


def _started(pid: int) -> str | None:
    """When the process `pid` started (to 1/100 s, the kernel's tick), None when no such process
    runs: a pid the system gave to a later process has another start time."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:  # ended, its parent has not collected it yet
            return None
        return f"{process.create_time():.2f}"
    except psutil.Error:
        return None


def local_alive(runner: str) -> bool | None:
    """Whether the local process `runner` names still runs; None when it cannot be told
    here (another host, or `local` alone: a process recorded before runners had ids)."""
    parts = runner.split(":", 3)
    if len(parts) != 4 or parts[0] != LOCAL or parts[1] != socket.gethostname():
        return None
    try:
        pid = int(parts[2])
    except ValueError:
        return None
    return _started(pid) == parts[3]


def age(record: dict[str, Any]) -> float | None:
    """Seconds since the import's last heartbeat, by the database's clock (`read_at`)."""
    beat, now = record.get("heartbeat_at"), record.get("read_at")
    return None if beat is None or now is None else (now - beat).total_seconds()


def stale(record: dict[str, Any]) -> bool:
    seconds = age(record)
    return seconds is not None and seconds > config.heartbeat_seconds()


def interrupted(record: dict[str, Any], ended_runs: Collection[str] = ()) -> bool:
    """Whether the import's runner stopped without ending it: it is owned by a runner, its
    heartbeat is stale and the runner is gone. `ended_runs`: the DAG runs known to have
    ended (the library cannot ask Airflow; an API server can)."""
    if record.get("status") not in statuses.OWNED_BY_RUNNER or not stale(record):
        return False
    runner = record.get("runner") or ""
    kind, _, name = runner.partition(":")
    if kind == LOCAL:
        return local_alive(runner) is not True
    if kind == DAG_RUN:
        return name in ended_runs
    return False  # no runner yet: an upload whose DAG run is being triggered


def runs_to_ask(records: Iterable[dict[str, Any]]) -> list[str]:
    """The DAG runs whose state decides whether these imports are interrupted: those of
    the imports owned by a runner whose heartbeat is stale."""
    return sorted({r["runner"].partition(":")[2] for r in records
                   if (r.get("runner") or "").startswith(f"{DAG_RUN}:")
                   and r.get("status") in statuses.OWNED_BY_RUNNER and stale(r)})


@contextmanager
def beating(url: str, import_id: str) -> Iterator[None]:
    """Within the block, a thread of this process keeps the import's heartbeat fresh: every
    BEATS_PER_THRESHOLD-th of CONTACT_IMPORT_HEARTBEAT_SECONDS, one UPDATE on a connection
    of its own, which writes nothing when a progress or chunk write beat since. So a stage
    shows it is alive while it reads a large file or waits for a long statement, and the
    hot path's chunks pay no extra round trip."""
    interval = config.heartbeat_seconds() / BEATS_PER_THRESHOLD
    stop = threading.Event()

    def beat() -> None:
        conn, failing = None, False
        try:
            while not stop.wait(interval):
                try:
                    if conn is None:
                        conn = db.connect(url)
                        conn.autocommit = True
                    imports.beat(conn, import_id, interval)
                    failing = False
                except psycopg2.Error as exc:  # the database away for a while: say so once, go on
                    if not failing:
                        log.warning("could not record import %s's heartbeat: %s", import_id, exc)
                    failing = True
                    if conn is not None:
                        conn.close()
                    conn = None
        finally:
            if conn is not None:
                conn.close()

    thread = threading.Thread(target=beat, name=f"heartbeat-{import_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=interval + 5)


def take_over(conn, import_id: str, runner: str) -> dict[str, Any]:
    """Make `runner` the runner of an interrupted local import, in the caller's transaction
    (the import's row locked until it commits, so two resumes cannot both take it); returns
    the import as it was. Raises NotInterrupted, ImportNotFound."""
    record = _interrupted_local(conn, import_id)
    imports.update(conn, import_id, runner=runner, heartbeat_at=imports.NOW)
    return record


def give_up(conn, import_id: str) -> None:
    """End an interrupted local import `failed` (GIVE_UP_MESSAGE), in the caller's transaction."""
    _interrupted_local(conn, import_id)
    statuses.end(conn, import_id, statuses.FAILED, GIVE_UP_MESSAGE)


def _interrupted_local(conn, import_id: str) -> dict[str, Any]:
    imports.lock(conn, import_id)
    record = imports.get(conn, import_id)
    status, runner = record["status"], record.get("runner") or ""
    kind, _, name = runner.partition(":")
    if status not in statuses.OWNED_BY_RUNNER:
        raise NotInterrupted(f"import {import_id} is {status}: only an interrupted import can be resumed or given up")
    if kind == DAG_RUN:
        raise NotInterrupted(f"import {import_id} runs under Airflow (DAG run {name}): Airflow retries its tasks;"
                             " clear the failed task in Airflow to run it again")
    if kind != LOCAL:
        raise NotInterrupted(f"import {import_id} has no runner recorded yet")
    if local_alive(runner):
        raise NotInterrupted(f"import {import_id} is still running (process {runner.split(':')[2]} on this host):"
                             " let it finish, or stop it first")
    if not stale(record):
        raise NotInterrupted(f"import {import_id} showed it is alive {age(record):.0f} s ago: it counts as"
                             f" interrupted once that is over {config.heartbeat_seconds():g} s"
                             " (CONTACT_IMPORT_HEARTBEAT_SECONDS)")
    return record
