"""The imports table: one row per import, its status and its counts.

STATUSES is the one list of statuses (SPEC section 5); everything else reads it.
"""
from __future__ import annotations

import json
import uuid
from typing import Any

from psycopg2.extras import RealDictCursor

from . import storage

WAITING = "waiting"
VALIDATING = "validating"
AWAITING_APPROVAL = "awaiting_approval"
IMPORTING = "importing"
COMPLETED = "completed"
VALIDATION_FAILED = "validation_failed"
CANCELLED = "cancelled"
FAILED = "failed"

STATUSES = (WAITING, VALIDATING, AWAITING_APPROVAL, IMPORTING, COMPLETED, VALIDATION_FAILED, CANCELLED, FAILED)
FINISHED = (COMPLETED, VALIDATION_FAILED, CANCELLED, FAILED)

COUNT_KEYS = ("created", "updated", "unchanged", "customers_created", "tags_added", "tags_removed",
              "bound", "unbound")

_COLUMNS = """i.id::text AS id, w.slug AS workspace, i.channel, i.tag_mode, i.status, i.source,
    i.file_name, i.file_uri, i.file_sha256, i.work_dir, i.encoding, i.delimiter, i.mapping,
    i.require_approval, i.total_rows, i.processed_rows, i.last_chunk, i.errors, i.warnings,
    i.preview, i.result, i.timings, i.error_report, i.message, i.dag_run_id,
    i.created_at, i.started_at, i.finished_at, i.updated_at"""


class ImportNotFound(LookupError):
    pass


def create(conn, *, workspace_id: int, channel: str, tag_mode: str, file_uri: str, file_name: str | None,
           source: str, mapping: dict | None = None, require_approval: bool = False,
           import_id: str | None = None, dag_run_id: str | None = None) -> str:
    import_id = import_id or str(uuid.uuid4())
    with conn.cursor() as cur:
        cur.execute(
            """INSERT INTO cdp.imports (id, workspace_id, channel, tag_mode, status, source, file_uri,
                   file_name, mapping, require_approval, dag_run_id)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
            (import_id, workspace_id, channel, tag_mode, WAITING, source, file_uri, file_name,
             json.dumps(mapping) if mapping else None, require_approval, dag_run_id),
        )
    return import_id


def get(conn, import_id: str, workspace_id: int | None = None) -> dict[str, Any]:
    try:
        uuid.UUID(str(import_id))
    except ValueError:
        raise ImportNotFound(f"no import {import_id!r}") from None
    with conn.cursor(cursor_factory=RealDictCursor) as cur:
        cur.execute(f"SELECT {_COLUMNS} FROM cdp.imports i JOIN cdp.workspaces w ON w.id = i.workspace_id"
                    " WHERE i.id = %s AND (%s::bigint IS NULL OR i.workspace_id = %s)",
                    (import_id, workspace_id, workspace_id))
        row = cur.fetchone()
    if row is None:
        raise ImportNotFound(f"no import {import_id!r}")
    return dict(row)


def workspace_id_of(conn, import_id: str) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT workspace_id FROM cdp.imports WHERE id = %s", (import_id,))
        row = cur.fetchone()
    if row is None:
        raise ImportNotFound(f"no import {import_id!r}")
    return row[0]


def list_imports(conn, workspace_id: int | None = None, status: str | None = None,
                 limit: int = 100) -> list[dict[str, Any]]:
    with conn.cursor(cursor_factory=RealDictCursor) as cur:
        cur.execute(f"SELECT {_COLUMNS} FROM cdp.imports i JOIN cdp.workspaces w ON w.id = i.workspace_id"
                    " WHERE (%s::bigint IS NULL OR i.workspace_id = %s) AND (%s::text IS NULL OR i.status = %s)"
                    " ORDER BY i.created_at DESC, i.id LIMIT %s",
                    (workspace_id, workspace_id, status, status, limit))
        return [dict(r) for r in cur.fetchall()]


def update(conn, import_id: str, **fields: Any) -> None:
    """Set columns of one import; dicts and lists are stored as JSON."""
    if "status" in fields and fields["status"] not in STATUSES:
        raise ValueError(f"unknown status {fields['status']!r}")
    from psycopg2 import sql

    values = [json.dumps(v) if isinstance(v, (dict, list)) else v for v in fields.values()]
    assignments = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(k)) for k in fields)
    with conn.cursor() as cur:
        cur.execute(sql.SQL("UPDATE cdp.imports SET {}, updated_at = now() WHERE id = %s").format(assignments),
                    (*values, import_id))


def set_status(conn, import_id: str, status: str, **fields: Any) -> None:
    update(conn, import_id, status=status, **fields)
    with conn.cursor() as cur:
        if status in FINISHED:
            cur.execute("UPDATE cdp.imports SET finished_at = now() WHERE id = %s", (import_id,))
        elif status == VALIDATING:
            cur.execute("UPDATE cdp.imports SET started_at = coalesce(started_at, now()) WHERE id = %s",
                        (import_id,))


class AlreadyFinished(Exception):
    """The import ended before it could be cancelled."""


def cancel(conn, import_id: str, message: str, workspace_id: int | None = None) -> dict[str, Any]:
    """Mark a waiting or running import cancelled; raises AlreadyFinished (and ImportNotFound)."""
    record = get(conn, import_id, workspace_id)
    if record["status"] in FINISHED:
        raise AlreadyFinished(f"import {import_id} already {record['status']}")
    set_status(conn, import_id, CANCELLED, message=message)
    return get(conn, import_id)


def _data_docs(error_report: str | None) -> str | None:
    """GX's page beside the report, when validation wrote one."""
    if not error_report:
        return None
    docs = storage.path(error_report).with_name("data_docs.html")
    try:
        return str(docs) if docs.exists() else None
    except Exception:  # object storage this process has no credentials for (a CLI without Airflow's)
        return None


def summary(record: dict[str, Any]) -> dict[str, Any]:
    """The JSON shape of an import for the CLI and the API (SPEC section 6)."""
    out = {k: record.get(k) for k in ("id", "workspace", "channel", "tag_mode", "status", "source",
                                       "file_name", "encoding", "delimiter", "total_rows",
                                       "processed_rows", "errors", "warnings", "preview", "result",
                                       "error_report", "message", "dag_run_id")}
    out["import_id"] = record["id"]
    out["data_docs"] = _data_docs(record.get("error_report"))
    out["rows"] = record.get("total_rows")
    for key in ("created_at", "started_at", "finished_at"):
        value = record.get(key)
        out[key] = value.isoformat() if value is not None else None
    return out
