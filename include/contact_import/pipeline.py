"""The stages of one import (SPEC section 5), as the DAG's tasks and the CLI call them.

Each `task_*` function takes the CDP database URL and the import id, does one stage,
records its outcome on the imports row and returns small metadata for XCom.
`check_file` runs the first three stages without any import record (`validate`).
"""
from __future__ import annotations

import csv
import json
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import pandas as pd
import psycopg2.errors

from . import binding, config, db, encoding, interruption, jobs, profiles, storage, upsert, validation, workspaces
from .channels import TAG_MODES, get_channel
from .errors import ERROR, WARNING, ImportFileError, Issue
from .mapping import ColumnMap, map_columns

UTF8_NAME = "source.utf8.csv"
NORMALISED_NAME = "normalised.csv"
REPORT_NAME = "errors.csv"
WARNINGS_NAME = "warnings.csv"
DATA_DOCS_NAME = "data_docs.html"  # GX's page of a failed validation, beside errors.csv
COLUMNS_NAME = "columns.json"


class StageError(Exception):
    """A stage ended the import (validation failed, cancelled); the message says why."""


@dataclass
class FileCheck:
    encoding: str | None = None
    delimiter: str | None = None
    rows: int | None = None
    columns: dict[str, str] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)
    preview: dict[str, int] | None = None

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == ERROR]

    def warnings(self) -> dict[str, int]:
        return validation.count_by_code(self.issues, WARNING)


@contextmanager
def timed(timings: dict[str, float] | None, step: str):
    started = time.monotonic()
    yield
    if timings is not None:  # a step that runs once per chunk adds up
        timings[step] = round(timings.get(step, 0.0) + time.monotonic() - started, 3)


def _record_timings(url: str, import_id: str, timings: dict[str, float]) -> None:
    with db.transaction(url) as conn, conn.cursor() as cur:
        cur.execute("UPDATE cdp.imports SET timings = timings || %s WHERE id = %s", (json.dumps(timings), import_id))


# ---------------------------------------------------------------- the stages themselves
def detect(source: Path, work_dir: Path) -> encoding.SourceInfo:
    return encoding.to_utf8(source, work_dir / UTF8_NAME)


def read_header(folder: str | Path) -> list[str]:
    """The UTF-8 copy's header, read straight from storage (a task needs no more of the file)."""
    # the csv module, not pandas: pandas renames a repeated header ("Name.1")
    with (storage.path(folder) / UTF8_NAME).open("r", encoding="utf-8", newline="") as f:
        return next(csv.reader(f))[1:]


def map_file(conn, ws: workspaces.Workspace, channel_name: str, work_dir: str | Path,
             explicit: dict | None) -> ColumnMap:
    return map_columns(read_header(work_dir), get_channel(channel_name), workspaces.attributes(conn, ws.id),
                       explicit)


def _mapped_chunks(work_dir: Path, columns: dict[str, str], chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The file's mapped columns under their field names, trimmed, None for empty; index = file line."""
    reader = pd.read_csv(work_dir / UTF8_NAME, dtype=str, keep_default_na=False, index_col="__row__",
                         usecols=["__row__", *columns], encoding="utf-8", chunksize=chunk_rows)
    for raw in reader:
        raw.index = raw.index.astype(int)
        yield raw.rename(columns=columns).apply(lambda col: col.str.strip()).replace("", None).astype(object)


def _normalised_csv(normalised: pd.DataFrame) -> pd.DataFrame:
    # tags: a list as JSON; "" (an empty cell that clears tags in overwrite mode) as []
    return normalised.assign(tags=[json.dumps(t, ensure_ascii=False) if t is not None and t != "" else
                                   ("[]" if t == "" else None) for t in normalised["tags"]])


def validate_file(conn, ws: workspaces.Workspace, channel_name: str, work_dir: Path,
                  columns: dict[str, str], timings: dict[str, float] | None = None) -> list[Issue]:
    """Normalise, run the GX suite and the binding checks chunk by chunk; write normalised.csv when clean.

    Memory follows the chunk, not the file: what spans chunks (duplicate User IDs, rows
    sharing a profile) is collected as the chunks pass.
    """
    channel = get_channel(channel_name)
    headers = {target: header for header, target in columns.items()}
    attributes = workspaces.attributes(conn, ws.id)
    normaliser = validation.Normaliser(channel, attributes, ws.default_region)
    omo = channel.omo_binding and ws.omo_enabled
    generated = validation.workspace_expectations(
        attributes, workspaces.teammate_emails(conn, ws.id) if omo else None,
        workspaces.store_codes(conn, ws.id) if omo else None)
    data_docs = work_dir / DATA_DOCS_NAME
    data_docs.unlink(missing_ok=True)
    user_ids = validation.UserIds()
    shared = profiles.SharedProfiles()
    unfolded = work_dir / (NORMALISED_NAME + ".unfolded")
    issues: list[Issue] = []
    with unfolded.open("w", encoding="utf-8", newline="") as out:
        chunks = _mapped_chunks(work_dir, columns, config.validate_chunk_rows())
        for number, frame in enumerate(_timed_iter(chunks, timings, "validate.read")):
            found: list[Issue] = []
            with timed(timings, "validate.normalise"):
                normalised, found_here = normaliser.normalise(frame, headers)
                found += found_here
            with timed(timings, "validate.bindings"):
                found += binding.check(conn, ws, channel, normalised, headers)
            with timed(timings, "validate.expectations"):
                found += validation.run_suite(frame, channel, headers, generated,
                                              None if data_docs.exists() else data_docs, user_ids)
            issues += found
            if not any(i.severity == ERROR for i in issues):
                with timed(timings, "validate.write"):
                    shared.add(normalised["email"], normalised["phone"])
                    _normalised_csv(normalised).to_csv(out, index=False, header=number == 0)
    issues = validation.first_per_cell(issues)
    if any(i.severity == ERROR for i in issues):
        unfolded.unlink()
    else:
        with timed(timings, "validate.fold"):
            profiles.fold_file(unfolded, work_dir / NORMALISED_NAME, shared.groups(), config.chunk_rows())
    return issues


def _timed_iter(items: Iterable, timings: dict[str, float] | None, step: str) -> Iterator:
    iterator = iter(items)
    while True:
        with timed(timings, step):
            item = next(iterator, None)
        if item is None:
            return
        yield item


def preview(url: str, ws: workspaces.Workspace, channel_name: str, tag_mode: str,
            work_dir: Path) -> tuple[dict[str, int], list[Issue]]:
    """What the import will do, planned by the import's own code without writing.

    The upsert's planning pass runs as a dry run (upsert.Upserter), so its counts and
    warnings are the import's; the workspace lock keeps other imports from changing
    the workspace while it reads.
    """
    channel = get_channel(channel_name)
    warnings: list[Issue] = []
    conn = db.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", (upsert.LOCK_NAMESPACE, ws.id))
        counts = upsert.run(conn, ws, channel, tag_mode, work_dir / NORMALISED_NAME, config.chunk_rows(),
                            on_chunk=lambda number, chunk, plan: warnings.extend(plan.warnings), dry_run=True)
        return counts | _bindings(conn, ws, channel, work_dir, binding.count_changes), warnings
    finally:
        conn.rollback()
        conn.close()


def _bindings(conn, ws, channel, work_dir, action=binding.apply) -> dict[str, int]:
    totals = {"bound": 0, "unbound": 0}
    for chunk in upsert.read_normalised(work_dir / NORMALISED_NAME, config.chunk_rows(), binding.COLUMNS):
        for key, value in action(conn, ws, channel, chunk).items():
            totals[key] += value
    return totals


def check_file(conn, url: str, ws: workspaces.Workspace, channel: str, tag_mode: str, source: Path,
               work_dir: Path, mapping: dict | None = None) -> FileCheck:
    """detect -> map -> validate -> preview, writing nothing to the CDP."""
    check = FileCheck()
    try:
        info = detect(source, work_dir)
    except ImportFileError as exc:
        check.issues.append(exc.issue)
        return check
    check.encoding, check.delimiter, check.rows = info.encoding, info.delimiter, info.rows
    column_map = map_file(conn, ws, channel, work_dir, mapping)
    check.columns, check.issues = column_map.columns, list(column_map.issues)
    if check.errors:
        return check
    check.issues += validate_file(conn, ws, channel, work_dir, column_map.columns)
    if not check.errors:
        check.preview, warnings = preview(url, ws, channel, tag_mode, work_dir)
        check.issues += warnings
    return check


# ---------------------------------------------------------------- storage
def upload_path(import_id: str, file_name: str) -> storage.UPath:
    """Where an import's file is stored: a server-chosen name keeping only the extension."""
    return storage.import_folder(import_id) / ("upload" + "".join(Path(file_name).suffixes[-1:]).lower()[:8])


def store_upload(source: storage.UPath, import_id: str) -> tuple[storage.UPath, str]:
    """Copy the file in under a server-chosen name; returns the stored path and its SHA-256."""
    target = upload_path(import_id, source.name)
    return target, storage.copy(source, target)


def check_options(channel: str, tag_mode: str, require_approval: bool = False) -> None:
    """Raises ValueError / LookupError for options no import can run with."""
    get_channel(channel)
    if tag_mode not in TAG_MODES:
        raise ValueError(f"tag mode must be one of {', '.join(TAG_MODES)}")


def create_import(url: str, *, workspace: str, channel: str, tag_mode: str, file: str,
                  mapping: dict | None = None, require_approval: bool = False, source: str = "cli",
                  import_id: str | None = None, dag_run_id: str | None = None) -> str:
    """Store the file and record the import as waiting; raises ValueError / LookupError on bad input."""
    check_options(channel, tag_mode, require_approval)
    path = storage.path(file) if file else None
    if path is None or not path.is_file():
        raise ValueError(f"no such file: {file}")
    import_id = import_id or str(uuid.uuid4())
    with db.transaction(url) as conn:
        workspaces.get(conn, workspace)
    stored, sha = store_upload(path, import_id)
    return record_upload(url, import_id=import_id, stored=stored, sha256=sha, file_name=path.name,
                         workspace=workspace, channel=channel, tag_mode=tag_mode, mapping=mapping,
                         require_approval=require_approval, source=source, dag_run_id=dag_run_id)


def record_upload(url: str, *, import_id: str, stored: storage.UPath, sha256: str, file_name: str, workspace: str,
                  channel: str, tag_mode: str, mapping: dict | None = None, require_approval: bool = False,
                  source: str = "api", dag_run_id: str | None = None) -> str:
    """Record an import whose file is already stored (`upload_path`) as waiting."""
    check_options(channel, tag_mode, require_approval)
    with db.transaction(url) as conn:
        ws = workspaces.get(conn, workspace)
        jobs.create(conn, workspace_id=ws.id, channel=channel, tag_mode=tag_mode, file_uri=str(stored),
                    file_name=file_name, source=source, mapping=mapping, require_approval=require_approval,
                    import_id=import_id, dag_run_id=dag_run_id)
        jobs.update(conn, import_id, file_sha256=sha256, work_dir=str(stored.parent))
    return import_id


# ---------------------------------------------------------------- DAG tasks
def _load(conn, import_id: str) -> tuple[dict[str, Any], workspaces.Workspace, str]:
    """The import, its workspace, and its folder in storage."""
    record = jobs.get(conn, import_id)
    ws = workspaces.get(conn, record["workspace"])
    return record, ws, record["work_dir"]


def task_detect_encoding(url: str, import_id: str) -> dict[str, Any]:
    timings: dict[str, float] = {}
    with db.transaction(url) as conn:
        record, ws, work_dir = _load(conn, import_id)
        if record["status"] in jobs.FINISHED:
            raise StageError(f"import {import_id} is already {record['status']}")
        jobs.set_status(conn, import_id, jobs.VALIDATING)
    upload = storage.path(record["file_uri"]).name
    with storage.local_folder(work_dir, fetch=[upload], publish=[UTF8_NAME, *REPORT_NAMES]) as local:
        try:
            with timed(timings, "detect_encoding"):
                info = detect(local / upload, local)
        except ImportFileError as exc:
            _reject(url, import_id, local, work_dir, [exc.issue])
    with db.transaction(url) as conn:
        jobs.update(conn, import_id, encoding=info.encoding, delimiter=info.delimiter, total_rows=info.rows)
    _record_timings(url, import_id, timings)
    return {"import_id": import_id, "encoding": info.encoding, "delimiter": info.delimiter, "rows": info.rows}


def task_map_columns(url: str, import_id: str) -> dict[str, Any]:
    with db.transaction(url) as conn:
        record, ws, work_dir = _load(conn, import_id)
        column_map = map_file(conn, ws, record["channel"], work_dir, record["mapping"])
    with storage.local_folder(work_dir, publish=[COLUMNS_NAME, *REPORT_NAMES]) as local:
        if column_map.issues:
            _reject(url, import_id, local, work_dir, column_map.issues)
        (local / COLUMNS_NAME).write_text(json.dumps(column_map.columns, ensure_ascii=False), encoding="utf-8")
    return {"import_id": import_id, "columns": len(column_map.columns)}


def task_validate(url: str, import_id: str) -> dict[str, Any]:
    with db.transaction(url) as conn:
        record, ws, work_dir = _load(conn, import_id)
    with storage.local_folder(work_dir, fetch=[UTF8_NAME, COLUMNS_NAME],
                              publish=[NORMALISED_NAME, WARNINGS_NAME, *REPORT_NAMES]) as local:
        columns = json.loads((local / COLUMNS_NAME).read_text(encoding="utf-8"))
        timings: dict[str, float] = {}
        with db.transaction(url) as conn:
            issues = validate_file(conn, ws, record["channel"], local, columns, timings)
        _record_timings(url, import_id, timings)
        if any(i.severity == ERROR for i in issues):
            _reject(url, import_id, local, work_dir, issues)
        with timed(timings, "validate.preview"):
            counts, warnings = preview(url, ws, record["channel"], record["tag_mode"], local)
        _record_timings(url, import_id, timings)
        if warnings:  # the rows behind the preview's profile_shared / identity_conflict counts
            validation.write_report(warnings, local / WARNINGS_NAME)
    with db.transaction(url) as conn:
        jobs.update(conn, import_id, preview=counts, warnings=validation.count_by_code(warnings, WARNING))
    return {"import_id": import_id, "valid": True, "preview": counts}


def task_approval_gate(url: str, import_id: str) -> str:
    """The DAG's branch after validation: the id of the task to run next. An import that
    requires approval waits (`awaiting_approval`) in Airflow's approval step."""
    with db.transaction(url) as conn:
        record = jobs.get(conn, import_id)
        if record["status"] == jobs.CANCELLED:
            raise StageError(f"import {import_id} was cancelled")
        if not record["require_approval"]:
            return "upsert_contacts"
        jobs.set_status(conn, import_id, jobs.AWAITING_APPROVAL)
    return "approve"


def task_rejected(url: str, import_id: str, by: str | None = None) -> None:
    """Someone rejected the import in the approval step: nothing was written, it ends cancelled."""
    with db.transaction(url) as conn:
        try:
            jobs.cancel(conn, import_id, f"rejected in the approval step{f' by {by}' if by else ''}")
        except jobs.AlreadyFinished:
            pass


def task_upsert_contacts(url: str, import_id: str) -> dict[str, Any]:
    conn = db.connect(url)
    try:
        record, ws, work_dir = _load(conn, import_id)
        if record["status"] == jobs.CANCELLED:
            raise StageError(f"import {import_id} was cancelled")
        jobs.set_status(conn, import_id, jobs.IMPORTING)
        conn.commit()
        done = record["result"] or {}

        def checkpoint(number, chunk, plan):
            totals = {k: done.get(k, 0) + plan.counts.get(k, 0) for k in upsert.COUNTS}
            done.update(totals)
            with conn.cursor() as cur:
                cur.execute("UPDATE cdp.imports SET last_chunk = %s, processed_rows = processed_rows + %s,"
                            " result = %s, updated_at = now() WHERE id = %s",
                            (number, len(chunk), json.dumps(done), import_id))

        def cancelled() -> bool:
            with conn.cursor() as cur:
                cur.execute("SELECT status FROM cdp.imports WHERE id = %s", (import_id,))
                return cur.fetchone()[0] == jobs.CANCELLED

        channel = get_channel(record["channel"])
        upserter = upsert.Upserter(conn, ws, channel, record["tag_mode"])
        upserter.lock_workspace()
        try:
            with interruption.stop_on_signals(conn) as stop, \
                    storage.local_folder(work_dir, fetch=[NORMALISED_NAME]) as local:
                upsert.run(conn, ws, channel, record["tag_mode"], local / NORMALISED_NAME, config.chunk_rows(),
                           start_after_chunk=record["last_chunk"], on_chunk=checkpoint,
                           should_stop=lambda: stop.is_set() or cancelled())
        except upsert.Cancelled:
            if not stop.is_set():
                raise StageError(f"import {import_id} was cancelled") from None
            _stopped(conn, import_id)
        except (interruption.Stopped, psycopg2.errors.QueryCanceled):
            if not stop.is_set():  # a statement cancelled by someone else is a crash, not a stop
                raise
            _stopped(conn, import_id)
        finally:
            conn.rollback()
            upserter.unlock_workspace()
            conn.commit()
        record = jobs.get(conn, import_id)
        return {"import_id": import_id, "processed_rows": record["processed_rows"]}
    finally:
        conn.close()


def _stopped(conn, import_id: str) -> None:
    """Airflow stopped the task (marked failed or cleared): the chunk in flight is rolled
    back, the committed ones stay, and the import ends cancelled."""
    conn.rollback()
    jobs.set_status(conn, import_id, jobs.CANCELLED,
                    message="stopped by Airflow (task marked failed or cleared) during upsert_contacts")
    conn.commit()
    raise StageError(f"import {import_id} was stopped during upsert_contacts; committed chunks are kept")


def task_bind_teammates(url: str, import_id: str) -> dict[str, Any]:
    with db.transaction(url) as conn:
        record, ws, work_dir = _load(conn, import_id)
        with storage.local_folder(work_dir, fetch=[NORMALISED_NAME]) as local:
            counts = _bindings(conn, ws, get_channel(record["channel"]), local)
        jobs.update(conn, import_id, result={**(record["result"] or {}), **counts})
    return {"import_id": import_id, **counts}


def task_finalize(url: str, import_id: str) -> dict[str, Any]:
    with db.transaction(url) as conn:
        record = jobs.get(conn, import_id)
        result = {key: (record["result"] or {}).get(key, 0) for key in jobs.COUNT_KEYS}
        jobs.set_status(conn, import_id, jobs.COMPLETED, result=result)
    return {"import_id": import_id, "status": jobs.COMPLETED, **result}


def run_task(name: str, url: str, import_id: str) -> dict[str, Any]:
    """One stage as a DAG task runs it: if Airflow stops the task (marked failed or
    cleared: SIGINT, then SIGTERM), the import ends `cancelled` instead of staying in the
    status of a stage no process runs any more. upsert_contacts handles the stop itself,
    rolling back its chunk in flight."""
    task = globals()[f"task_{name}"]
    if name == "upsert_contacts":
        return task(url, import_id)
    try:
        with interruption.stop_on_signals(None):
            return task(url, import_id)
    except interruption.Stopped:
        with db.transaction(url) as conn:
            try:
                jobs.cancel(conn, import_id, f"stopped by Airflow (task marked failed or cleared) during {name}")
            except (jobs.AlreadyFinished, jobs.ImportNotFound):
                pass
        raise StageError(f"import {import_id} was stopped during {name}") from None


def task_failed(url: str, import_id: str, message: str) -> None:
    """Record a crash as `failed`, unless the import already ended another way."""
    with db.transaction(url) as conn:
        try:
            record = jobs.get(conn, import_id)
        except jobs.ImportNotFound:  # the run failed before it could record its import
            return
        if record["status"] not in jobs.FINISHED:
            jobs.set_status(conn, import_id, jobs.FAILED, message=message[:2000])


def report_path(report, lang: str):
    """errors.csv is English; errors.zh-TW.csv beside it (paths local or in storage)."""
    return report if lang == "en" else report.with_name(f"{report.stem}.{lang}{report.suffix}")


# what a rejection leaves to read (the stages put these back into storage)
REPORT_NAMES = (REPORT_NAME, report_path(Path(REPORT_NAME), "zh-TW").name, DATA_DOCS_NAME)


def _reject(url: str, import_id: str, local: Path, folder: str, issues: list[Issue]) -> None:
    """Write the report into the task's local folder (storage.local_folder publishes it),
    record it under its place in storage, and end the import validation_failed."""
    report = local / REPORT_NAME
    errors = [i for i in issues if i.severity == ERROR]
    validation.write_report(errors, report, limit=config.max_report_errors())
    # the same rows in Traditional Chinese, for the API's Accept-Language
    validation.write_report(errors, report_path(report, "zh-TW"), "zh-TW", limit=config.max_report_errors())
    report = storage.path(folder) / REPORT_NAME
    with db.transaction(url) as conn:
        jobs.set_status(conn, import_id, jobs.VALIDATION_FAILED, errors=len(errors), error_report=str(report),
                        warnings=validation.count_by_code(issues, WARNING),
                        message=json.dumps(validation.count_by_code(issues)))
    raise StageError(f"validation failed: {len(errors)} errors {validation.count_by_code(issues)}; "
                     f"report: {report}")


def import_exists(url: str, import_id: str) -> bool:
    with db.transaction(url) as conn:
        try:
            jobs.get(conn, import_id)
            return True
        except jobs.ImportNotFound:
            return False


def record_run(url: str, import_id: str, dag_run_id: str) -> None:
    with db.transaction(url) as conn:
        jobs.update(conn, import_id, dag_run_id=dag_run_id)
