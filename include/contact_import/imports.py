"""The imports table (cdp.imports): one row per import, its options, progress and counts.

The status column is statuses.py's alone to change (`statuses.change`).
"""
from __future__ import annotations

import json
import uuid
from typing import Any, Collection, Sequence

from psycopg2 import sql
from psycopg2.extras import RealDictCursor

from .db import copy_rows
from .errors import Issue

COUNT_KEYS = ("created", "updated", "unchanged", "customers_created", "tags_added", "tags_removed",
              "bound", "unbound")
NOW = sql.SQL("now()")  # a field value meaning the database's clock

# The steps of a running import, in order (docs/operations.md#progress): detect_encoding and
# map_columns read, validate checks (and makes the preview when someone will approve),
# upsert_contacts imports, bind_teammates binds.
READING, CHECKING, PREVIEW, IMPORTING, BINDING = "reading", "checking", "preview", "importing", "binding"
STEPS = (READING, CHECKING, PREVIEW, IMPORTING, BINDING)

_COLUMNS = """i.id::text AS id, w.slug AS workspace, i.channel, i.tag_mode, i.complete_local_phones,
    i.status, i.source,
    i.file_name, i.file_uri, i.file_sha256, i.work_dir, i.encoding, i.delimiter, i.mapping,
    i.require_approval, i.total_rows, i.processed_rows, i.last_chunk, i.errors, i.warnings,
    i.preview, i.preview_sample, i.result, i.timings, i.error_report, i.data_docs, i.message, i.dag_run_id, i.requested_by,
    i.created_at, i.started_at, i.finished_at, i.updated_at, i.step, i.step_rows, i.step_rows_at_start,
    i.step_started_at, i.step_updated_at, i.heartbeat_at, i.runner, clock_timestamp() AS read_at"""


# Read with every import, for people telling imports apart: the partner feed a feed's
# import came from (its ledger row names it; null for other imports), and which upload of
# a file of that name into the workspace it is (1 for the first, 2 for the next one, ...).
_ORIGIN = """(SELECT f.feed FROM cdp.feed_files f WHERE f.import_id = i.id ORDER BY f.id LIMIT 1) AS feed,
    (SELECT count(*) FROM cdp.imports e WHERE e.workspace_id = i.workspace_id AND e.file_name = i.file_name
     AND (e.created_at, e.id) <= (i.created_at, i.id))::int AS file_repeat"""


class ImportNotFound(LookupError):
    pass


def create(conn, *, workspace_id: int, channel: str, tag_mode: str, file_uri: str, file_name: str | None,
           source: str, mapping: dict | None = None, require_approval: bool = False,
           complete_local_phones: bool = False, import_id: str | None = None,
           dag_run_id: str | None = None, runner: str | None = None, requested_by: str | None = None) -> str:
    """A new import, `waiting` (the first status); `runner`: who runs it (heartbeat.py),
    when known already; `requested_by`: the Airflow user the upload API checked the
    workspace's access for."""
    import_id = import_id or str(uuid.uuid4())
    with conn.cursor() as cur:
        cur.execute(
            """INSERT INTO cdp.imports (id, workspace_id, channel, tag_mode, complete_local_phones, status,
                   source, file_uri, file_name, mapping, require_approval, dag_run_id, runner, requested_by)
               VALUES (%s, %s, %s, %s, %s, 'waiting', %s, %s, %s, %s, %s, %s, %s, %s)""",
            (import_id, workspace_id, channel, tag_mode, complete_local_phones, source, file_uri, file_name,
             json.dumps(mapping) if mapping else None, require_approval, dag_run_id, runner, requested_by),
        )
    return import_id


def _valid_id(import_id: str) -> None:
    try:
        uuid.UUID(str(import_id))
    except ValueError:
        raise ImportNotFound(f"no import {import_id!r}") from None


def get(conn, import_id: str, workspace_id: int | None = None) -> dict[str, Any]:
    _valid_id(import_id)
    with conn.cursor(cursor_factory=RealDictCursor) as cur:
        cur.execute(f"SELECT {_COLUMNS}, {_ORIGIN} FROM cdp.imports i JOIN cdp.workspaces w ON w.id = i.workspace_id"
                    " WHERE i.id = %s AND (%s::bigint IS NULL OR i.workspace_id = %s)",
                    (import_id, workspace_id, workspace_id))
        row = cur.fetchone()
    if row is None:
        raise ImportNotFound(f"no import {import_id!r}")
    return dict(row)


def exists(conn, import_id: str) -> bool:
    try:
        get(conn, import_id)
        return True
    except ImportNotFound:
        return False


def lock(conn, import_id: str, workspace_id: int | None = None) -> str:
    """Lock the import's row for the caller's transaction; returns its status."""
    _valid_id(import_id)
    with conn.cursor() as cur:
        cur.execute("SELECT status FROM cdp.imports WHERE id = %s AND (%s::bigint IS NULL OR workspace_id = %s)"
                    " FOR UPDATE", (import_id, workspace_id, workspace_id))
        row = cur.fetchone()
    if row is None:
        raise ImportNotFound(f"no import {import_id!r}")
    return row[0]


def _filter(workspace_id: int | Sequence[int] | None, status: str | Sequence[str] | None) -> tuple[str, tuple]:
    ids = [workspace_id] if isinstance(workspace_id, int) else None if workspace_id is None else list(workspace_id)
    wanted = [status] if isinstance(status, str) else list(status or ())
    return ("(%s::bigint[] IS NULL OR i.workspace_id = ANY(%s::bigint[])) AND (%s::text[] IS NULL OR i.status = ANY(%s))",
            (ids, ids, wanted or None, wanted or None))


def list_imports(conn, workspace_id: int | Sequence[int] | None = None, status: str | Sequence[str] | None = None,
                 limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    """Imports newest first, of one workspace (or of several: a list of ids) and in one or
    several statuses when given; `limit` of them after skipping `offset` (a page)."""
    where, values = _filter(workspace_id, status)
    with conn.cursor(cursor_factory=RealDictCursor) as cur:
        cur.execute(f"SELECT {_COLUMNS}, {_ORIGIN} FROM cdp.imports i JOIN cdp.workspaces w ON w.id = i.workspace_id"
                    f" WHERE {where} ORDER BY i.created_at DESC, i.id LIMIT %s OFFSET %s",
                    (*values, limit, offset))
        return [dict(r) for r in cur.fetchall()]


def count_imports(conn, workspace_id: int | Sequence[int] | None = None, status: str | Sequence[str] | None = None) -> int:
    """How many imports list_imports finds with these filters, on every page."""
    where, values = _filter(workspace_id, status)
    with conn.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM cdp.imports i WHERE {where}", values)
        return cur.fetchone()[0]


def unfinished_runs(conn, finished: tuple[str, ...]) -> dict[str, str]:
    """dag_run_id -> import id of the imports not in a `finished` status that have a DAG run."""
    with conn.cursor() as cur:
        cur.execute("SELECT dag_run_id, id::text FROM cdp.imports WHERE dag_run_id IS NOT NULL"
                    " AND NOT status = ANY(%s)", (list(finished),))
        return dict(cur.fetchall())


def record_run(conn, import_id: str, dag_run_id: str, runner: str) -> None:
    """The import's DAG run; `runner` becomes its runner unless it has one (a local
    `contact-import import` runs its DAG run in a process of its own, which is the runner)."""
    with conn.cursor() as cur:
        cur.execute("UPDATE cdp.imports SET dag_run_id = %s, runner = COALESCE(runner, %s), updated_at = now()"
                    " WHERE id = %s", (dag_run_id, runner, import_id))


def beat(conn, import_id: str, older_than: float) -> None:
    """The runner is alive: heartbeat_at now, unless a progress write set it less than
    `older_than` seconds ago (then the row is not written at all). Skips a row another
    transaction holds: that is the runner's own, about to write it."""
    with conn.cursor() as cur:
        cur.execute("UPDATE cdp.imports SET heartbeat_at = clock_timestamp() WHERE id = ("
                    " SELECT id FROM cdp.imports WHERE id = %s"
                    " AND heartbeat_at < clock_timestamp() - make_interval(secs => %s) FOR UPDATE SKIP LOCKED)",
                    (import_id, older_than))


def stalled(conn, source: str, older_than_seconds: float) -> list[str]:
    """Ids of the imports from `source` still `waiting` without a DAG run, recorded more
    than `older_than_seconds` ago: whoever was to start their run stopped first."""
    with conn.cursor() as cur:
        cur.execute("SELECT id::text FROM cdp.imports WHERE status = 'waiting' AND dag_run_id IS NULL"
                    " AND source = %s AND created_at < now() - make_interval(secs => %s) ORDER BY created_at",
                    (source, older_than_seconds))
        return [import_id for (import_id,) in cur.fetchall()]


def recorded(conn, import_ids: list[str]) -> set[str]:
    """Which of `import_ids` (UUIDs; anything else is no import) the database holds."""
    valid = []
    for import_id in import_ids:
        try:
            valid.append(str(uuid.UUID(import_id)))
        except ValueError:
            pass
    with conn.cursor() as cur:
        cur.execute("SELECT id::text FROM cdp.imports WHERE id = ANY(%s::uuid[])", (valid,))
        return {import_id for (import_id,) in cur.fetchall()}


def update(conn, import_id: str, **fields: Any) -> None:
    """Set columns of one import; dicts and lists are stored as JSON. Not its status."""
    if "status" in fields:
        raise ValueError("an import's status changes through statuses.change")
    set_fields(conn, import_id, **fields)


def set_fields(conn, import_id: str, _status: str | None = None, **fields: Any) -> None:
    if _status is not None:
        fields["status"] = _status
    assignments = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(k), v if isinstance(v, sql.Composable) else sql.Placeholder())
        for k, v in fields.items())
    values = [json.dumps(v) if isinstance(v, (dict, list)) else v for v in fields.values()
              if not isinstance(v, sql.Composable)]
    with conn.cursor() as cur:
        cur.execute(sql.SQL("UPDATE cdp.imports SET {}, updated_at = now() WHERE id = %s").format(assignments),
                    (*values, import_id))


def add_timings(conn, import_id: str, timings: dict[str, float]) -> None:
    with conn.cursor() as cur:
        cur.execute("UPDATE cdp.imports SET timings = timings || %s WHERE id = %s", (json.dumps(timings), import_id))


def record_chunk(conn, import_id: str, number: int, rows: int, result: dict[str, int],
                 warnings: dict[str, int], found: list[Issue]) -> None:
    """An upsert chunk's checkpoint, committed with the chunk's writes: the counts so far,
    and the chunk's warnings with their rows; the runner's heartbeat too."""
    with conn.cursor() as cur:
        # clock_timestamp(): now() would be when the chunk's transaction began, a chunk ago
        cur.execute("UPDATE cdp.imports SET last_chunk = %s, processed_rows = processed_rows + %s,"
                    " step_rows = processed_rows + %s, step_updated_at = clock_timestamp(),"
                    " heartbeat_at = clock_timestamp(),"
                    " result = %s, warnings = %s, updated_at = now() WHERE id = %s",
                    (number, rows, rows, json.dumps(result), json.dumps(warnings), import_id))
        if found:
            copy_rows(cur, "cdp.import_warnings", _warning_rows(import_id, found, "upsert"), _WARNING_FIELDS,
                      analyze=False)


def start_step(conn, import_id: str, step: str, rows_done: int = 0) -> None:
    """The import enters `step` (one of STEPS). rows_done: rows already done when it starts
    (rows validation left out as unchanged, chunks an earlier attempt committed); they
    count as done but not towards the rate."""
    if step not in STEPS:
        raise ValueError(f"unknown step {step!r}")
    with conn.cursor() as cur:
        cur.execute("UPDATE cdp.imports SET step = %s, step_rows = %s, step_rows_at_start = %s,"
                    " step_started_at = clock_timestamp(), step_updated_at = clock_timestamp(),"
                    " heartbeat_at = clock_timestamp() WHERE id = %s",
                    (step, rows_done, rows_done, import_id))


def record_progress(conn, import_id: str, step: str, rows_done: int) -> None:
    """Rows of the file done so far in `step`: one small UPDATE, meant for its own short
    transaction once per chunk; it is the runner's heartbeat too. A late write of a step
    the import has left changes nothing."""
    with conn.cursor() as cur:
        cur.execute("UPDATE cdp.imports SET step_rows = %s, step_updated_at = clock_timestamp(),"
                    " heartbeat_at = clock_timestamp()"
                    " WHERE id = %s AND step = %s", (rows_done, import_id, step))


_WARNING_FIELDS = ("import_id", "row", "column", "value", "code", "params", "found_by")


def _warning_rows(import_id: str, found: list[Issue], found_by: str):
    return ((import_id, i.row, i.column, i.value, i.code, json.dumps(i.params, ensure_ascii=False), found_by)
            for i in found)


def record_validation_warnings(conn, import_id: str, found: list[Issue]) -> None:
    """Validation's warnings (phone_completed) with their rows, replacing those of an
    earlier validation of the import; the import's counts are theirs until the upsert adds its own."""
    with conn.cursor() as cur:
        cur.execute("DELETE FROM cdp.import_warnings WHERE import_id = %s AND found_by = 'validation'", (import_id,))
        if found:
            copy_rows(cur, "cdp.import_warnings", _warning_rows(import_id, found, "validation"), _WARNING_FIELDS,
                      analyze=False)
    _count_warnings(conn, import_id)


def forget_warnings(conn, import_id: str) -> None:
    """An upsert starting from its first chunk: its warnings are replaced, validation's stay."""
    with conn.cursor() as cur:
        cur.execute("DELETE FROM cdp.import_warnings WHERE import_id = %s AND found_by = 'upsert'", (import_id,))
    _count_warnings(conn, import_id)


def _count_warnings(conn, import_id: str) -> None:
    with conn.cursor() as cur:
        cur.execute("""UPDATE cdp.imports SET warnings = coalesce(
                           (SELECT jsonb_object_agg(code, n) FROM
                                (SELECT code, count(*) AS n FROM cdp.import_warnings
                                 WHERE import_id = %(id)s GROUP BY code) counted), '{}')
                       WHERE id = %(id)s""", {"id": import_id})


def warning_rows(conn, import_id: str) -> list[Issue]:
    """The rows behind the import's warnings, as validation and the upsert recorded them."""
    with conn.cursor() as cur:
        cur.execute('SELECT code, row, "column", value, params FROM cdp.import_warnings WHERE import_id = %s'
                    " ORDER BY row, \"column\", code", (import_id,))
        return [Issue(code, row, column, value, params) for code, row, column, value, params in cur.fetchall()]


def summary(record: dict[str, Any], ended_runs: Collection[str] = ()) -> dict[str, Any]:
    """The JSON shape of an import for the CLI and the API. `ended_runs`: the DAG runs
    known to have ended, which tell whether an import under Airflow is interrupted
    (heartbeat.runs_to_ask); a local import's process is looked at here."""
    from . import heartbeat  # heartbeat imports this module

    out = {k: record.get(k) for k in ("id", "workspace", "channel", "tag_mode", "complete_local_phones",
                                       "status", "source",
                                       "file_name", "encoding", "delimiter", "total_rows",
                                       "processed_rows", "errors", "warnings", "preview", "preview_sample", "result",
                                       "error_report", "data_docs", "message", "dag_run_id")}
    out["import_id"] = record["id"]
    out["rows"] = record.get("total_rows")
    out["feed"] = record.get("feed")
    out["file_repeat"] = record.get("file_repeat")
    for key in ("created_at", "started_at", "finished_at"):
        value = record.get(key)
        out[key] = value.isoformat() if value is not None else None
    out["progress"] = progress(record)
    out["runner"] = record.get("runner")
    beat = record.get("heartbeat_at")
    out["heartbeat_at"] = beat.isoformat() if beat is not None else None
    out["interrupted"] = heartbeat.interrupted(record, ended_runs)
    return out


def progress(record: dict[str, Any]) -> dict[str, Any] | None:
    """The running step, its rows done of the file's, the rate since the step started and
    the time left at that rate; None unless the import is validating or importing.

    The time left counts down from the last chunk to when the record was read (`read_at`,
    the database's clock), so it moves between chunks too."""
    from . import statuses  # statuses imports this module

    step = record.get("step")
    if step is None or record.get("status") not in statuses.RUNNING:
        return None
    done, total = record.get("step_rows") or 0, record.get("total_rows")
    started, updated = record.get("step_started_at"), record.get("step_updated_at")
    moved = done - (record.get("step_rows_at_start") or 0)
    rate = left = None
    if started is not None and updated is not None and moved > 0 and updated > started:
        rate = moved / (updated - started).total_seconds()
        if total is not None:
            left = max(total - done, 0) / rate
            if record.get("read_at") is not None:
                left = max(left - max((record["read_at"] - updated).total_seconds(), 0.0), 0.0)
    return {"step": step, "rows_done": done, "rows_total": total,
            "rows_per_second": round(rate, 1) if rate is not None else None,
            "seconds_left": round(left, 1) if left is not None else None}
