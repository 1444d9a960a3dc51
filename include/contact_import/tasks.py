"""One function per task of DAG `contact_import`: each does its stage for one import,
records the outcome on the import and returns small metadata for XCom.

The DAG calls them through `run`, which ends the import `cancelled` when Airflow stops
the task. The light tasks (detect_encoding, map_columns, the approval gate, finalize)
import no pandas or Great Expectations: `stages`, `upsert` and `binding` are imported by
the tasks that use them, so a light task's process starts in a fraction of a second.
"""
from __future__ import annotations

import json
from typing import Any, Callable

import psycopg2
from psycopg2.errors import QueryCanceled

from . import config, db, heartbeat, import_folder, imports, interruption, reading, statuses, storage, workspaces
from .channels import get_channel
from .context import Context
from .errors import ERROR, WARNING, ImportFileError, Issue
from .reports import count_by_code, write_report
from .timings import Timings, timed


class StageError(Exception):
    """A stage ended the import (validation failed, cancelled); the message says why."""


class DatabaseLost(Exception):
    """The CDP database's connection broke in the middle of a step (a restart, a failover):
    not the file's fault, so the task fails and Airflow retries it."""


def _load(conn, import_id: str) -> tuple[dict[str, Any], workspaces.Workspace]:
    record = imports.get(conn, import_id)
    return record, workspaces.get(conn, record["workspace"])


def _change(conn, import_id: str, status: str, **fields: Any) -> None:
    """A stage moves its import on; a status that does not allow it ends the stage."""
    try:
        statuses.change(conn, import_id, status, **fields)
    except statuses.IllegalTransition as exc:
        raise StageError(str(exc)) from None


def _record_timings(ctx: Context, import_id: str, timings: Timings) -> None:
    with db.transaction(ctx.cdp_url) as conn:
        imports.add_timings(conn, import_id, timings)


def _start_step(ctx: Context, import_id: str, step: str, rows_done: int = 0) -> Callable[[int], None]:
    """Enter `step`; returns the callback a stage calls after each chunk with its rows done
    (plus `rows_done`, the rows done before it started). Each call is one UPDATE in a short
    transaction of its own: the stage's work runs in a long one nobody sees until it ends."""
    with db.transaction(ctx.cdp_url) as conn:
        imports.start_step(conn, import_id, step, rows_done)

    def record(rows: int) -> None:
        with db.transaction(ctx.cdp_url) as conn:
            imports.record_progress(conn, import_id, step, rows_done + rows)
    return record


def detect_encoding(ctx: Context, import_id: str) -> dict[str, Any]:
    timings: Timings = {}
    with db.transaction(ctx.cdp_url) as conn:
        record, _ = _load(conn, import_id)
        _change(conn, import_id, statuses.VALIDATING)
        imports.start_step(conn, import_id, imports.READING)
    upload = ctx.storage.path(record["file_uri"]).name
    with ctx.storage.local_folder(record["work_dir"], fetch=[upload],
                                  publish=[import_folder.UTF8, *import_folder.REJECTION]) as local:
        try:
            with timed(timings, "detect_encoding"):
                info = reading.detect(local / upload, local)
        except ImportFileError as exc:
            _reject(ctx, import_id, local, record["work_dir"], [exc.issue])
    with db.transaction(ctx.cdp_url) as conn:
        imports.update(conn, import_id, encoding=info.encoding, delimiter=info.delimiter, total_rows=info.rows)
        imports.record_progress(conn, import_id, imports.READING, info.rows)
        imports.add_timings(conn, import_id, timings)
    return {"import_id": import_id, "encoding": info.encoding, "delimiter": info.delimiter, "rows": info.rows}


def map_columns(ctx: Context, import_id: str) -> dict[str, Any]:
    with db.transaction(ctx.cdp_url) as conn:
        record, ws = _load(conn, import_id)
        column_map = reading.map_file(conn, ws, record["channel"], ctx.storage.path(record["work_dir"]),
                                      record["mapping"])
    with ctx.storage.local_folder(record["work_dir"],
                                  publish=[import_folder.COLUMNS, *import_folder.REJECTION]) as local:
        if column_map.issues:
            _reject(ctx, import_id, local, record["work_dir"], column_map.issues)
        (local / import_folder.COLUMNS).write_text(json.dumps(column_map.columns, ensure_ascii=False),
                                                   encoding="utf-8")
    return {"import_id": import_id, "columns": len(column_map.columns)}


def validate(ctx: Context, import_id: str) -> dict[str, Any]:
    """Check the rows and write them normalised. The preview (what the import will do,
    planned without writing) costs about a third of the upsert, so it is made only for an
    import that waits for someone's approval; the upsert records the warnings itself."""
    from . import stages, unchanged

    with db.transaction(ctx.cdp_url) as conn:
        record, ws = _load(conn, import_id)
    with ctx.storage.local_folder(record["work_dir"], fetch=[import_folder.UTF8, import_folder.COLUMNS],
                                  publish=[import_folder.NORMALISED, import_folder.UNCHANGED, import_folder.WARNINGS,
                                           *import_folder.REJECTION]) as local:
        columns = json.loads((local / import_folder.COLUMNS).read_text(encoding="utf-8"))
        timings: Timings = {}
        progress = _start_step(ctx, import_id, imports.CHECKING)
        with db.transaction(ctx.cdp_url) as conn:
            issues = stages.validate_file(conn, ws, record["channel"], local, columns, timings,
                                          tag_mode=record["tag_mode"],
                                          complete_local_phones=record["complete_local_phones"],
                                          shortcut=config.unchanged_shortcut(), on_progress=progress)
        _record_timings(ctx, import_id, timings)
        if any(i.severity == ERROR for i in issues):
            _reject(ctx, import_id, local, record["work_dir"], issues)
        warnings = [i for i in issues if i.severity == WARNING]  # kept with their rows for the report
        with db.transaction(ctx.cdp_url) as conn:
            imports.record_validation_warnings(conn, import_id, warnings)
        counts, sample = None, None
        if record["require_approval"]:
            sample = []  # the first changes, shown with the counts to whoever approves
            left_out = unchanged.count(local / import_folder.UNCHANGED)  # not in the normalised rows
            progress = _start_step(ctx, import_id, imports.PREVIEW, left_out)
            with timed(timings, "validate.preview"):
                counts, planned = stages.preview(ctx.cdp_url, ws, record["channel"], record["tag_mode"], local,
                                                 on_progress=progress, sample=sample)
            _record_timings(ctx, import_id, timings)
            warnings += planned  # the preview's profile_shared / identity_conflict rows
            if warnings:
                write_report(warnings, local / import_folder.WARNINGS)
    with db.transaction(ctx.cdp_url) as conn:
        imports.update(conn, import_id, preview=counts, preview_sample=sample,
                       warnings=count_by_code(warnings, WARNING))
    return {"import_id": import_id, "valid": True, "preview": counts}


def approval_needed(ctx: Context, import_id: str) -> bool:
    """After validation: whether the import waits for someone's approval (it is then
    `awaiting_approval`) or goes on to the upsert."""
    with db.transaction(ctx.cdp_url) as conn:
        record = imports.get(conn, import_id)
        if record["status"] == statuses.CANCELLED:
            raise StageError(f"import {import_id} was cancelled")
        if record["require_approval"]:
            _change(conn, import_id, statuses.AWAITING_APPROVAL)
        return bool(record["require_approval"])


def approval_request(ctx: Context, import_id: str, page_url: str) -> tuple[str, str]:
    """What the approval step shows: a subject naming the file and workspace, and a body
    (Markdown) with the preview's counts, its sample of changes and a link to the Contact
    imports page at `page_url`."""
    from . import changes

    with db.transaction(ctx.cdp_url) as conn:
        record = imports.get(conn, import_id)
    return changes.approval_subject(record), changes.approval_text(record, page_url)


def rejected(ctx: Context, import_id: str, by: str | None = None) -> None:
    """Someone rejected the import in the approval step: nothing was written, it ends cancelled."""
    with db.transaction(ctx.cdp_url) as conn:
        statuses.end(conn, import_id, statuses.CANCELLED,
                     f"rejected in the approval step{f' by {by}' if by else ''}")


def upsert_contacts(ctx: Context, import_id: str) -> dict[str, Any]:
    from . import upsert

    conn = db.connect(ctx.cdp_url)
    try:
        record, ws = _load(conn, import_id)
        if record["status"] == statuses.CANCELLED:
            raise StageError(f"import {import_id} was cancelled")
        fresh = record["last_chunk"] < 0
        if fresh:  # the warnings are the upsert's own: a preview's are replaced
            imports.forget_warnings(conn, import_id)
        _change(conn, import_id, statuses.IMPORTING)
        imports.start_step(conn, import_id, imports.IMPORTING, 0 if fresh else record["processed_rows"])
        conn.commit()
        done = record["result"] or {}

        def checkpoint(number, chunk, plan):
            done.update({k: done.get(k, 0) + plan.counts.get(k, 0) for k in upsert.COUNTS})
            for issue in plan.warnings:
                warned[issue.code] = warned.get(issue.code, 0) + 1
            imports.record_chunk(conn, import_id, number, len(chunk), done, dict(sorted(warned.items())),
                                 plan.warnings)

        def cancelled() -> bool:
            return imports.get(conn, import_id)["status"] == statuses.CANCELLED

        channel = get_channel(record["channel"])
        upserter = upsert.Upserter(conn, ws, channel, record["tag_mode"])
        upserter.lock_workspace()
        try:
            if fresh:
                unchanged_rows = _unchanged_rows(ctx, conn, import_id, record, ws)
                done = {"unchanged": unchanged_rows}
                imports.update(conn, import_id, processed_rows=unchanged_rows, result=done)
                # the step starts again here: checking the rows left out is not the chunks' pace
                imports.start_step(conn, import_id, imports.IMPORTING, unchanged_rows)
                conn.commit()
            warned = dict(imports.get(conn, import_id)["warnings"] or {})  # validation's, and earlier chunks'
            with interruption.stop_on_signals(conn) as stop, \
                    ctx.storage.local_folder(record["work_dir"], fetch=[import_folder.NORMALISED]) as local:
                upsert.run(conn, ws, channel, record["tag_mode"], local / import_folder.NORMALISED,
                           config.chunk_rows(), start_after_chunk=record["last_chunk"], on_chunk=checkpoint,
                           should_stop=lambda: stop.is_set() or cancelled())
        except upsert.Cancelled:
            if not stop.is_set():
                raise StageError(f"import {import_id} was cancelled") from None
            _stopped(conn, import_id)
        except (interruption.Stopped, QueryCanceled):
            if not stop.is_set():  # a statement cancelled by someone else is a crash, not a stop
                raise
            _stopped(conn, import_id)
        except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
            if not conn.closed:
                raise
            raise DatabaseLost(f"the connection to the CDP database was lost during upsert_contacts"
                               f" ({str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__});"
                               " the chunks committed before it are kept, and Airflow's retry resumes after"
                               " the last of them") from exc
        finally:
            if not conn.closed:  # a lost session has rolled back and released its lock
                conn.rollback()
                upserter.unlock_workspace()
                conn.commit()
        return {"import_id": import_id, "processed_rows": imports.get(conn, import_id)["processed_rows"]}
    finally:
        conn.close()


def _unchanged_rows(ctx: Context, conn, import_id: str, record: dict[str, Any], ws: workspaces.Workspace) -> int:
    """How many rows validation left out as unchanged, checked under the workspace lock
    before the first chunk: if another import or an edit changed one of them since, the
    file is validated again with the shortcut off (every row takes the full path)."""
    from . import stages, unchanged

    with ctx.storage.local_folder(record["work_dir"], fetch=[import_folder.UNCHANGED]) as local:
        listed = local / import_folder.UNCHANGED
        if unchanged.still_held(conn, listed):
            return unchanged.count(listed)
    with ctx.storage.local_folder(record["work_dir"], fetch=[import_folder.UTF8, import_folder.COLUMNS],
                                  publish=[import_folder.NORMALISED, import_folder.UNCHANGED]) as local:
        columns = json.loads((local / import_folder.COLUMNS).read_text(encoding="utf-8"))
        issues = stages.validate_file(conn, ws, record["channel"], local, columns, tag_mode=record["tag_mode"],
                                      complete_local_phones=record["complete_local_phones"])
    errors = [i for i in issues if i.severity == ERROR]
    if errors:  # the workspace's rules changed since validation too
        conn.rollback()
        statuses.end(conn, import_id, statuses.FAILED,
                     f"the workspace changed since validation and the file no longer passes it"
                     f" ({count_by_code(errors)}): run it again for the report")
        conn.commit()
        raise StageError(f"import {import_id} no longer passes validation")
    imports.record_validation_warnings(conn, import_id, [i for i in issues if i.severity == WARNING])
    return 0


def _stopped(conn, import_id: str) -> None:
    """Airflow stopped the task (marked failed or cleared): the chunk in flight is rolled
    back, the committed ones stay, and the import ends cancelled."""
    conn.rollback()
    statuses.end(conn, import_id, statuses.CANCELLED,
                 "stopped by Airflow (task marked failed or cleared) during upsert_contacts")
    conn.commit()
    raise StageError(f"import {import_id} was stopped during upsert_contacts; committed chunks are kept")


def bind_teammates(ctx: Context, import_id: str) -> dict[str, Any]:
    from . import binding, unchanged

    with db.transaction(ctx.cdp_url) as conn:
        record, ws = _load(conn, import_id)
        with conn.cursor() as cur:
            unchanged.applying(cur)
        with ctx.storage.local_folder(record["work_dir"],
                                      fetch=[import_folder.NORMALISED, import_folder.UNCHANGED]) as local:
            progress = _start_step(ctx, import_id, imports.BINDING, unchanged.count(local / import_folder.UNCHANGED))
            counts = binding.apply_file(conn, ws, get_channel(record["channel"]), local / import_folder.NORMALISED,
                                        config.chunk_rows(), on_progress=progress)
        imports.update(conn, import_id, result={**(record["result"] or {}), **counts})
    return {"import_id": import_id, **counts}


def finalize(ctx: Context, import_id: str) -> dict[str, Any]:
    """The warnings report from the rows the upsert recorded, and the import completed."""
    with db.transaction(ctx.cdp_url) as conn:
        record = imports.get(conn, import_id)
        found = imports.warning_rows(conn, import_id)
        if found:
            with ctx.storage.local_folder(record["work_dir"], publish=[import_folder.WARNINGS]) as local:
                write_report(found, local / import_folder.WARNINGS)
        elif (stale := ctx.storage.path(record["work_dir"]) / import_folder.WARNINGS).exists():
            stale.unlink()  # a preview's, which the import did not bear out
        result = {key: (record["result"] or {}).get(key, 0) for key in imports.COUNT_KEYS}
        _change(conn, import_id, statuses.COMPLETED, result=result)
    return {"import_id": import_id, "status": statuses.COMPLETED, **result}


def run(task: Callable[[Context, str], Any], ctx: Context, import_id: str) -> Any:
    """One task as the DAG (or `contact-import resume`) runs it, beating the import's
    heartbeat all along: if Airflow stops the task (marked failed or cleared: SIGINT, then
    SIGTERM), the import ends `cancelled` instead of staying in the status of a stage no
    process runs any more. upsert_contacts handles the stop itself, rolling back its chunk
    in flight. A full disk fails the task as `storage_full`."""
    with heartbeat.beating(ctx.cdp_url, import_id), storage.faults(task.__name__):
        if task is upsert_contacts:
            return task(ctx, import_id)
        return _stopped_is_cancelled(task, ctx, import_id)


def _stopped_is_cancelled(task: Callable[[Context, str], Any], ctx: Context, import_id: str) -> Any:
    try:
        with interruption.stop_on_signals(None):
            return task(ctx, import_id)
    except interruption.Stopped:
        with db.transaction(ctx.cdp_url) as conn:
            try:
                statuses.end(conn, import_id, statuses.CANCELLED,
                             f"stopped by Airflow (task marked failed or cleared) during {task.__name__}")
            except imports.ImportNotFound:
                pass
        raise StageError(f"import {import_id} was stopped during {task.__name__}") from None


def failed(ctx: Context, import_id: str, message: str) -> None:
    """Record a crash as `failed`, unless the import already ended another way."""
    with db.transaction(ctx.cdp_url) as conn:
        try:
            statuses.end(conn, import_id, statuses.FAILED, message[:2000])
        except imports.ImportNotFound:  # the run failed before it could record its import
            pass


def run_ended(ctx: Context, import_id: str) -> None:
    """The import's DAG run ended as failed: an import still unfinished never had its tasks
    run to the end (its run was marked failed while queued, say) and ends cancelled."""
    with db.transaction(ctx.cdp_url) as conn:
        try:
            statuses.end(conn, import_id, statuses.CANCELLED, "its DAG run was marked failed in Airflow")
        except imports.ImportNotFound:
            pass


def _reject(ctx: Context, import_id: str, local, folder: str, issues: list[Issue]) -> None:
    """Write the reports into the task's local folder and put them into storage, then
    record them there and end the import validation_failed: storage that cannot take them
    fails the step before anything is recorded, so Airflow's retry rejects the file again."""
    errors = [i for i in issues if i.severity == ERROR]
    for lang in ("en", "zh-TW"):  # the same rows in Traditional Chinese, for the API's Accept-Language
        write_report(errors, import_folder.report_path(local / import_folder.ERRORS, lang), lang,
                     limit=config.max_report_errors())
    ctx.storage.publish(local, folder, import_folder.REJECTION)
    report = ctx.storage.path(folder) / import_folder.ERRORS
    data_docs = ctx.storage.path(folder) / import_folder.DATA_DOCS if (local / import_folder.DATA_DOCS).exists() \
        else None
    by_code = count_by_code(issues)
    with db.transaction(ctx.cdp_url) as conn:
        _change(conn, import_id, statuses.VALIDATION_FAILED, errors=len(errors), error_report=str(report),
                data_docs=str(data_docs) if data_docs else None, warnings=count_by_code(issues, WARNING),
                message=json.dumps(by_code))
    raise StageError(f"validation failed: {len(errors)} errors {by_code}; report: {report}")


# The DAG's tasks in the order a run without approval runs them.
ORDER = (detect_encoding, map_columns, validate, approval_needed, upsert_contacts, bind_teammates, finalize)
# Where an import whose runner stopped in a step goes on: the upsert after its last
# committed chunk, the stages before it from their start (they write nothing to the CDP),
# binding again (binding a bound contact changes nothing).
_RESUMED_IN = {None: detect_encoding, imports.READING: detect_encoding, imports.CHECKING: validate,
               imports.PREVIEW: validate, imports.IMPORTING: upsert_contacts, imports.BINDING: bind_teammates}


def remaining(record: dict[str, Any]) -> tuple[Callable[[Context, str], Any], ...]:
    """The tasks an interrupted import still has to run, the one it stopped in first."""
    first = detect_encoding if record["status"] == statuses.WAITING else _RESUMED_IN[record.get("step")]
    return ORDER[ORDER.index(first):]


def resume(ctx: Context, import_id: str) -> dict[str, Any]:
    """Go on with an interrupted local import in this process, which becomes its runner,
    from the stage it stopped in; returns the import as it ended. Raises
    heartbeat.NotInterrupted (an import that is not interrupted: its runner is alive, ...)."""
    with db.transaction(ctx.cdp_url) as conn:
        record = heartbeat.take_over(conn, import_id, heartbeat.this_process())
    for task in remaining(record):
        try:
            if run(task, ctx, import_id) is True and task is approval_needed:
                break  # waits for someone's approval in Airflow
        except StageError:
            break  # the import ended (validation failed, cancelled): its record says how
        except Exception as exc:  # as the DAG's failure callback records a task that failed
            failed(ctx, import_id, f"{task.__name__}: {exc}")
            raise
    with db.transaction(ctx.cdp_url) as conn:
        return imports.get(conn, import_id)
