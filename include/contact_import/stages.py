"""The stages that work on the rows: validate (normalise, GX suite, bindings, shared
profiles), the preview, and `check_file`, the dry run of all of them.

They work on an import's local folder (storage.local_folder) and return facts; tasks.py
records them on the import.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import binding, config, db, import_folder, normalised, profiles, reading, upsert, validation, workspaces
from .channels import get_channel
from .errors import ERROR, WARNING, ImportFileError, Issue
from .reports import count_by_code
from .timings import Timings, timed, timed_iter


def _mapped_chunks(work_dir: Path, columns: dict[str, str], chunk_rows: int):
    """The file's mapped columns under their field names, trimmed, None for empty; index = file line."""
    reader = pd.read_csv(work_dir / import_folder.UTF8, dtype=str, keep_default_na=False, index_col="__row__",
                         usecols=["__row__", *columns], encoding="utf-8", chunksize=chunk_rows)
    for raw in reader:
        raw.index = raw.index.astype(int)
        yield raw.rename(columns=columns).apply(lambda col: col.str.strip()).replace("", None).astype(object)


def validate_file(conn, ws: workspaces.Workspace, channel_name: str, work_dir: Path,
                  columns: dict[str, str], timings: Timings | None = None) -> list[Issue]:
    """Normalise, run the GX suite and the binding checks chunk by chunk; write the
    normalised rows when the file is clean.

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
    data_docs = work_dir / import_folder.DATA_DOCS
    data_docs.unlink(missing_ok=True)
    user_ids = validation.UserIds()
    shared = profiles.SharedProfiles()
    unfolded = work_dir / (import_folder.NORMALISED + ".unfolded")
    issues: list[Issue] = []
    with unfolded.open("w", encoding="utf-8", newline="") as out:
        chunks = _mapped_chunks(work_dir, columns, config.validate_chunk_rows())
        for number, frame in enumerate(timed_iter(chunks, timings, "validate.read")):
            found: list[Issue] = []
            with timed(timings, "validate.normalise"):
                rows, found_here = normaliser.normalise(frame, headers)
                found += found_here
            with timed(timings, "validate.bindings"):
                found += binding.check(conn, ws, channel, rows, headers)
            with timed(timings, "validate.expectations"):
                found += validation.run_suite(frame, channel, headers, generated,
                                              None if data_docs.exists() else data_docs, user_ids)
            issues += found
            if not any(i.severity == ERROR for i in issues):
                with timed(timings, "validate.write"):
                    shared.add(rows["email"], rows["phone"])
                    normalised.write_chunk(rows, out, first=number == 0)
    issues = validation.first_per_cell(issues)
    if any(i.severity == ERROR for i in issues):
        unfolded.unlink()
    else:
        with timed(timings, "validate.fold"):
            profiles.fold_file(unfolded, work_dir / import_folder.NORMALISED, shared.groups(), config.chunk_rows())
    return issues


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
        counts = upsert.run(conn, ws, channel, tag_mode, work_dir / import_folder.NORMALISED, config.chunk_rows(),
                            on_chunk=lambda number, chunk, plan: warnings.extend(plan.warnings), dry_run=True)
        return counts | binding.apply_file(conn, ws, channel, work_dir / import_folder.NORMALISED,
                                           config.chunk_rows(), binding.count_changes), warnings
    finally:
        conn.rollback()
        conn.close()


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
        return count_by_code(self.issues, WARNING)


def check_file(conn, url: str, ws: workspaces.Workspace, channel: str, tag_mode: str, source: Path,
               work_dir: Path, mapping: dict | None = None) -> FileCheck:
    """detect -> map -> validate -> preview, writing nothing to the CDP."""
    check = FileCheck()
    try:
        info = reading.detect(source, work_dir)
    except ImportFileError as exc:
        check.issues.append(exc.issue)
        return check
    check.encoding, check.delimiter, check.rows = info.encoding, info.delimiter, info.rows
    column_map = reading.map_file(conn, ws, channel, work_dir, mapping)
    check.columns, check.issues = column_map.columns, list(column_map.issues)
    if check.errors:
        return check
    check.issues += validate_file(conn, ws, channel, work_dir, column_map.columns)
    if not check.errors:
        check.preview, warnings = preview(url, ws, channel, tag_mode, work_dir)
        check.issues += warnings
    return check
