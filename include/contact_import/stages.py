"""The stages that work on the rows: validate (normalise, GX suite, bindings, shared
profiles), the preview, and `check_file`, the dry run of all of them.

They work on an import's local folder (storage.local_folder) and return facts; tasks.py
records them on the import.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import pandas as pd

from . import (binding, changes, config, db, import_folder, normalised, profiles, reading, unchanged, upsert,
               validation, workspaces)
from .channels import get_channel
from .errors import ERROR, WARNING, ImportFileError, Issue
from .mapping import USER_ID
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
                  columns: dict[str, str], timings: Timings | None = None, *, tag_mode: str = "append",
                  complete_local_phones: bool = False, shortcut: bool = False,
                  on_progress: Callable[[int], None] | None = None) -> list[Issue]:
    """Normalise, run the GX suite and the binding checks chunk by chunk; write the
    normalised rows when the file is clean. on_progress(rows) after each chunk: the rows
    of the file read so far, those left out as unchanged included. The import's options:
    `tag_mode`, and `complete_local_phones` (normalisation.completed).

    Memory follows the chunk, not the file: what spans chunks (duplicate User IDs, rows
    sharing a profile) is collected as the chunks pass. With `shortcut`, rows the CDP
    already holds are left out (unchanged.py) and listed in `import_folder.UNCHANGED`.
    """
    channel = get_channel(channel_name)
    checks = _RowChecks(conn, ws, channel, work_dir, columns, timings, complete_local_phones)
    digest = unchanged.rules_digest(conn, ws, channel, columns, tag_mode, complete_local_phones)
    matcher = unchanged.Matcher(conn, ws, channel) if shortcut else None
    (work_dir / import_folder.UNCHANGED).unlink(missing_ok=True)
    skip: np.ndarray | None = None  # None: match the rows chunk by chunk
    for attempt in range(3):
        issues, matched, repeated = checks.run(digest, matcher, skip, on_progress=on_progress)
        if not len(matched):
            break
        reached = set() if repeated else matcher.reached()
        if not reached:
            break
        if repeated or attempt == 1:  # the full path reports repeated User IDs; a second round is rare
            matcher, skip = None, None
        else:
            matcher.drop(reached)
            skip = np.setdiff1d(matched, np.fromiter(reached, dtype=np.int64))
    unfolded = checks.unfolded
    if any(i.severity == ERROR for i in issues):
        unfolded.unlink()
        return issues
    with timed(timings, "validate.fold"):
        profiles.fold_file(unfolded, work_dir / import_folder.NORMALISED, checks.shared.groups(),
                           config.chunk_rows())
    if len(matched):
        matcher.write(work_dir / import_folder.UNCHANGED)
    else:  # written even empty: it replaces the list of an earlier attempt in storage
        (work_dir / import_folder.UNCHANGED).write_text("", encoding="utf-8")
    return issues


class _RowChecks:
    """One pass of validation over the file: the rows not left out as unchanged are
    normalised, checked and written to `unfolded`."""

    def __init__(self, conn, ws: workspaces.Workspace, channel, work_dir: Path, columns: dict[str, str],
                 timings: Timings | None, complete_local_phones: bool) -> None:
        self.conn, self.ws, self.channel, self.work_dir, self.columns = conn, ws, channel, work_dir, columns
        self.timings = timings
        self.headers = {target: header for header, target in columns.items()}
        self.normaliser = validation.Normaliser(channel, workspaces.attributes(conn, ws.id), ws.default_region,
                                                complete_local_phones)
        omo = channel.omo_binding and ws.omo_enabled
        self.generated = validation.workspace_expectations(
            workspaces.attributes(conn, ws.id), workspaces.teammate_emails(conn, ws.id) if omo else None,
            workspaces.store_codes(conn, ws.id) if omo else None)
        self.unfolded = work_dir / (import_folder.NORMALISED + ".unfolded")

    def run(self, digest: str, matcher: unchanged.Matcher | None, skip: np.ndarray | None, *,
            on_progress: Callable[[int], None] | None = None) -> tuple[list[Issue], np.ndarray, bool]:
        """The issues, the rows left out as unchanged, and whether a User ID repeats."""
        timings, headers = self.timings, self.headers
        data_docs = self.work_dir / import_folder.DATA_DOCS
        data_docs.unlink(missing_ok=True)
        user_ids, every_id = validation.UserIds(), validation.UserIds()
        self.shared = profiles.SharedProfiles()
        skip_rows = np.asarray(skip, dtype=np.int64) if skip is not None else None
        issues: list[Issue] = []
        matched: list[np.ndarray] = []
        repeated = False
        # rows left out shrink the chunks: the rest are checked in batches of a chunk's size,
        # since the suite and the normalisers cost a fixed time per call besides their rows
        batch: list[tuple[pd.DataFrame, pd.Series]] = []

        def check(frames: list[tuple[pd.DataFrame, pd.Series]]) -> None:
            frame = pd.concat([f for f, _ in frames]) if len(frames) > 1 else frames[0][0]
            prints = pd.concat([p for _, p in frames]) if len(frames) > 1 else frames[0][1]
            found: list[Issue] = []
            with timed(timings, "validate.normalise"):
                rows, found_here = self.normaliser.normalise(frame, headers)
                rows["fingerprint"] = prints.reindex(rows.index)
                # a row warned of here is never left out as unchanged: each import reports it
                warned = [i.row for i in found_here if i.severity == WARNING]
                if warned:
                    rows.loc[warned, "fingerprint"] = None
                found += found_here
            with timed(timings, "validate.bindings"):
                found += binding.check(self.conn, self.ws, self.channel, rows, headers)
            with timed(timings, "validate.expectations"):
                found += validation.run_suite(frame, self.channel, headers, self.generated,
                                              None if data_docs.exists() else data_docs, user_ids)
            issues.extend(found)
            if not any(i.severity == ERROR for i in issues):
                with timed(timings, "validate.write"):
                    self.shared.add(rows["email"], rows["phone"])
                    normalised.write_chunk(rows, out)
                    if matcher is not None:
                        matcher.full_path(rows)

        with self.unfolded.open("w", encoding="utf-8", newline="") as out:
            normalised.write_header(out)
            chunk_rows = config.validate_chunk_rows()
            chunks = _mapped_chunks(self.work_dir, self.columns, chunk_rows)
            for frame in _reporting(timed_iter(chunks, timings, "validate.read"), on_progress):
                with timed(timings, "validate.unchanged"):
                    prints = unchanged.fingerprints(frame, digest)
                    if matcher is not None and matcher.active and USER_ID in frame:
                        ids = frame[USER_ID]
                        repeated = repeated or bool(ids.dropna().duplicated().any()) \
                            or bool(every_id.check(ids, USER_ID))
                        here = (matcher.match(ids, prints) if skip_rows is None
                                else frame.index[frame.index.isin(skip_rows)].to_numpy())
                        if len(here):
                            matched.append(here)
                            frame = frame[~frame.index.isin(here)]
                if frame.empty:
                    continue
                batch.append((frame, prints))
                if sum(len(f) for f, _ in batch) >= chunk_rows:
                    check(batch)
                    batch = []
            if batch:
                check(batch)
        rows_matched = np.unique(np.concatenate(matched)) if matched else np.empty(0, dtype=np.int64)
        return validation.first_per_cell(issues), rows_matched, repeated


def _reporting(frames: Iterable[pd.DataFrame],
               on_progress: Callable[[int], None] | None) -> Iterator[pd.DataFrame]:
    """The frames, calling on_progress(rows of the frames so far) once the loop is done with
    each (when it asks for the next one, or after the last), so a chunk it skips counts too."""
    read = 0
    for frame in frames:
        yield frame
        read += len(frame)
        if on_progress is not None:
            on_progress(read)


def preview(url: str, ws: workspaces.Workspace, channel_name: str, tag_mode: str, work_dir: Path, *,
            on_progress: Callable[[int], None] | None = None,
            sample: list[dict] | None = None) -> tuple[dict[str, int], list[Issue]]:
    """What the import will do, planned by the import's own code without writing.
    on_progress(rows) after each chunk: the rows of the normalised file planned so far.

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
        path, done = work_dir / import_folder.NORMALISED, [0]
        planned: list[dict] | None = [] if sample is not None else None

        def on_chunk(number, chunk, plan):
            warnings.extend(plan.warnings)
            done[0] += len(chunk)
            if on_progress is not None:
                on_progress(done[0])

        counts = upsert.run(conn, ws, channel, tag_mode, path, config.chunk_rows(), on_chunk=on_chunk, dry_run=True,
                            sample=planned)
        counts["unchanged"] += unchanged.count(work_dir / import_folder.UNCHANGED)
        if sample is not None:  # the planner's first changes and the bindings', in file order
            sample[:] = changes.merged(planned, binding.sample_file(conn, ws, channel, path, config.chunk_rows(),
                                                                    changes.SAMPLE_SIZE))
        return counts | binding.apply_file(conn, ws, channel, path, config.chunk_rows(),
                                           binding.count_changes), warnings
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
               work_dir: Path, mapping: dict | None = None, complete_local_phones: bool = False) -> FileCheck:
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
    check.issues += validate_file(conn, ws, channel, work_dir, column_map.columns, tag_mode=tag_mode,
                                  complete_local_phones=complete_local_phones)
    if not check.errors:
        check.preview, warnings = preview(url, ws, channel, tag_mode, work_dir)
        check.issues += warnings
    return check
