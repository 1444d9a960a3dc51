"""Taking a file in: the options an import needs, its file stored under a server-chosen
name, its record `waiting`. The API server, the feeds and the trigger form's first task
start here, so this module imports nothing heavy (no pandas, no Great Expectations).
"""
from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

from . import db, heartbeat, import_folder, imports, reading, storage, workspaces
from .channels import CHANNELS, TAG_MODES, get_channel
from .context import Context
from .errors import ERROR, ImportFileError, Issue
from .mapping import header_key

# What the upload check reads of a text file: as much as detect_encoding samples.
HEAD_BYTES = 1 << 20
# A workbook is read whole (its directory is at its end); a larger one is left to the DAG,
# which checks everything anyway, so the API server never spends long on one upload.
WORKBOOK_CHECK_BYTES = 16 << 20
WHOLE_FILE_MAGIC = (b"PK\x03\x04", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1")  # zip (.xlsx, .ods), OLE2 (.xls)


def check_options(channel: str | None, tag_mode: str | None) -> None:
    """Raises ValueError for options no import can run with (None: not given yet)."""
    if channel is not None:
        get_channel(channel)
    if tag_mode is not None and tag_mode not in TAG_MODES:
        raise ValueError(f"tag mode must be one of {', '.join(TAG_MODES)}")


def check_request(ctx: Context, *, workspace: str | None = None, channel: str | None = None,
                  tag_mode: str | None = None, complete_local_phones: bool = False,
                  user: workspaces.User | None = None) -> None:
    """The options given so far: ValueError for a channel or tag mode no import can run
    with, or local numbers to complete in a workspace without a region; LookupError for
    a workspace that does not exist, workspaces.NotAllowed for one `user` may not use
    (None: an operator's request, trusted)."""
    check_options(channel, tag_mode)
    if workspace is not None:
        with db.transaction(ctx.cdp_url) as conn:
            ws = workspaces.get(conn, workspace) if user is None else workspaces.get_usable(conn, workspace, user)
            check_workspace_options(ws, complete_local_phones)


def check_workspace_options(ws: workspaces.Workspace, complete_local_phones: bool) -> None:
    """ValueError for an option the workspace cannot honour."""
    if complete_local_phones and not ws.default_region:
        raise ValueError(f"workspace {ws.slug!r} has no default_region, so local phone numbers cannot be"
                         " completed; give it one in the workspace file, or write the numbers with"
                         " their country code")


def check_file(ctx: Context, stored: storage.UPath, *, workspace: str, channel: str,
               mapping: dict | None = None) -> list[Issue]:
    """The errors the DAG's first two stages would find that show in the file's first
    bytes and its header (encoding, delimiter, a text that is no table, the column
    mapping, the channel's User ID column), found by the same functions
    (reading.detect, reading.map_file); [] when none show. A file small enough to be
    read whole here gets every file-level check. A file of another channel gets
    `channel_mismatch` first. The DAG checks everything again."""
    with tempfile.TemporaryDirectory(dir=_scratch()) as tmp:
        work = Path(tmp)
        try:
            header = _header(stored, work)
        except ImportFileError as exc:
            return [exc.issue]
        if header is None:
            return []
        with db.transaction(ctx.cdp_url) as conn:
            column_map = reading.map_file(conn, workspaces.get(conn, workspace), channel, work, mapping)
    issues = [issue for issue in column_map.issues if issue.severity == ERROR]
    mismatch = channel_mismatch(header, channel, issues)
    return [mismatch, *issues] if mismatch else issues


def channel_mismatch(header: list[str], channel: str, issues: list[Issue]) -> Issue | None:
    """`channel_mismatch` when the channel's User ID column is missing and another
    channel's is there: the file was most likely uploaded under the wrong channel."""
    if not any(issue.code == "missing_required_column" for issue in issues):
        return None
    expected = get_channel(channel)
    present = {header_key(h): h for h in header}
    for other in CHANNELS.values():
        column = present.get(header_key(other.user_id_header))
        if other.name != channel and column is not None:
            return Issue("channel_mismatch", row=1, column=column,
                         params={"other": other.label, "channel": expected.label,
                                 "expected": expected.user_id_header})
    return None


def _scratch() -> Path:
    folder = storage.scratch_root()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _header(stored: storage.UPath, work: Path) -> list[str] | None:
    """The file's header through reading.detect, or None when it cannot be told here.
    Raises ImportFileError for what the first bytes already decide."""
    with stored.open("rb") as f:
        head = f.read(HEAD_BYTES + 1)
    whole = len(head) <= HEAD_BYTES
    if head.startswith(WHOLE_FILE_MAGIC):
        if storage.is_local(stored):
            local = storage.local_path(stored)
        elif stored.stat().st_size <= WORKBOOK_CHECK_BYTES:
            local = work / f"whole{stored.suffix}"
            storage.copy(stored, storage.UPath(local))
        else:
            return None
        if local.stat().st_size > WORKBOOK_CHECK_BYTES:
            return None
        return reading.detect(local, work).header
    if not whole:  # no line end at all: the first bytes may still tell it is no table
        head = _to_last_line_end(head[:HEAD_BYTES]) or head[:HEAD_BYTES]
    sample = work / "head"
    sample.write_bytes(head)
    try:
        return reading.detect(sample, work).header
    except ImportFileError as exc:
        # Cut short, the sample's last record may look broken (a quoted cell left open, a
        # character cut in two) although the file is fine: only what the first bytes and
        # the header line decide counts then.
        header_line = (exc.issue.row or 1) == 1 and exc.issue.code != "file_empty"
        if whole or exc.issue.code == "not_a_table" or header_line:
            raise
        return None


def _to_last_line_end(head: bytes) -> bytes:
    """`head` up to the end of its last line, so that no character or line is cut in two:
    in UTF-16 a line end is two bytes at an even offset (`\\n\\0` or `\\0\\n`), elsewhere `\\n`."""
    if b"\0" not in head:
        return head[: head.rfind(b"\n") + 1]
    best = 0
    for end in (b"\n\0", b"\0\n"):
        i = head.rfind(end)
        while i > 0 and i % 2:
            i = head.rfind(end, 0, i + 1)
        if i >= 0 and i % 2 == 0:
            best = max(best, i + 2)
    return head[:best]


def upload_path(ctx: Context, import_id: str, file_name: str) -> storage.UPath:
    """Where an import's file is stored: a server-chosen name keeping only the extension."""
    return ctx.storage.import_folder(import_id) / import_folder.upload_name(file_name)


def create_import(ctx: Context, *, workspace: str, channel: str, tag_mode: str, file: str,
                  mapping: dict | None = None, require_approval: bool = False,
                  complete_local_phones: bool = False, source: str = "cli",
                  import_id: str | None = None, dag_run_id: str | None = None, runner: str | None = None) -> str:
    """Copy the file in and record the import as waiting; raises ValueError / LookupError on bad input.
    `runner`: the process that will run it, when that is not its DAG run (heartbeat.py)."""
    check_options(channel, tag_mode)
    path = ctx.storage.path(file) if file else None
    if path is None or not path.is_file():
        raise ValueError(f"no such file: {file}")
    import_id = import_id or str(uuid.uuid4())
    with db.transaction(ctx.cdp_url) as conn:
        check_workspace_options(workspaces.get(conn, workspace), complete_local_phones)
    stored = upload_path(ctx, import_id, path.name)
    sha = storage.copy(path, stored)
    return record_upload(ctx, import_id=import_id, stored=stored, sha256=sha, file_name=path.name,
                         workspace=workspace, channel=channel, tag_mode=tag_mode, mapping=mapping,
                         require_approval=require_approval, complete_local_phones=complete_local_phones,
                         source=source, dag_run_id=dag_run_id, runner=runner)


def record_upload(ctx: Context, *, import_id: str, stored: storage.UPath, sha256: str, file_name: str,
                  workspace: str, channel: str, tag_mode: str, mapping: dict | None = None,
                  require_approval: bool = False, complete_local_phones: bool = False, source: str = "api",
                  dag_run_id: str | None = None, runner: str | None = None, requested_by: str | None = None) -> str:
    """Record an import whose file is already stored (`upload_path`) as waiting;
    `requested_by`: the Airflow user the upload API checked the workspace's access for."""
    check_options(channel, tag_mode)
    with db.transaction(ctx.cdp_url) as conn:
        ws = workspaces.get(conn, workspace)
        check_workspace_options(ws, complete_local_phones)
        imports.create(conn, workspace_id=ws.id, channel=channel, tag_mode=tag_mode, file_uri=str(stored),
                       file_name=file_name, source=source, mapping=mapping, require_approval=require_approval,
                       complete_local_phones=complete_local_phones, import_id=import_id, dag_run_id=dag_run_id,
                       runner=runner, requested_by=requested_by)
        imports.update(conn, import_id, file_sha256=sha256, work_dir=str(stored.parent))
    return import_id


# Imports recorded by operators: a feed's workspace is named in include/feeds.yaml, the
# CLI's by whoever runs it on the box with the CDP's credentials.
TRUSTED_SOURCES = ("feed", "cli")


def check_run(ctx: Context, import_id: str, user: str | None, workspace: str | None = None) -> None:
    """Whether a DAG run that Airflow records as triggered by `user` may work on the import,
    before anything reads its file. `workspace`: the trigger form's, whose import is not
    recorded yet. A run knows its user by name only (Airflow keeps no roles on it), so the
    workspace's access must name the user, unless the import was recorded by operators or
    accepted by the upload API for this same user (the API checked name and roles).
    A run with no user (scheduled: the feeds) is trusted. Raises workspaces.NotAllowed;
    LookupError for a workspace that does not exist."""
    if user is None:
        return
    with db.transaction(ctx.cdp_url) as conn:
        if workspace is None:
            try:
                record = imports.get(conn, import_id)
            except imports.ImportNotFound:
                return  # nothing to work on: the first stage says so
            if record["source"] in TRUSTED_SOURCES or record["requested_by"] == user:
                return
            workspace = record["workspace"]
        workspaces.get_usable(conn, workspace, workspaces.User.of(user))


def record_run(ctx: Context, import_id: str, dag_run_id: str) -> None:
    """The import's DAG run, its runner unless a local process runs that run."""
    with db.transaction(ctx.cdp_url) as conn:
        imports.record_run(conn, import_id, dag_run_id, heartbeat.dag_run(dag_run_id))


def import_exists(ctx: Context, import_id: str) -> bool:
    with db.transaction(ctx.cdp_url) as conn:
        return imports.exists(conn, import_id)
