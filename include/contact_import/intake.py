"""Taking a file in: the options an import needs, its file stored under a server-chosen
name, its record `waiting`. The API server, the feeds and the trigger form's first task
start here, so this module imports nothing heavy (no pandas, no Great Expectations).
"""
from __future__ import annotations

import uuid

from . import db, import_folder, imports, storage, workspaces
from .channels import TAG_MODES, get_channel
from .context import Context


def check_options(channel: str, tag_mode: str) -> None:
    """Raises ValueError for options no import can run with."""
    get_channel(channel)
    if tag_mode not in TAG_MODES:
        raise ValueError(f"tag mode must be one of {', '.join(TAG_MODES)}")


def upload_path(ctx: Context, import_id: str, file_name: str) -> storage.UPath:
    """Where an import's file is stored: a server-chosen name keeping only the extension."""
    return ctx.storage.import_folder(import_id) / import_folder.upload_name(file_name)


def create_import(ctx: Context, *, workspace: str, channel: str, tag_mode: str, file: str,
                  mapping: dict | None = None, require_approval: bool = False, source: str = "cli",
                  import_id: str | None = None, dag_run_id: str | None = None) -> str:
    """Copy the file in and record the import as waiting; raises ValueError / LookupError on bad input."""
    check_options(channel, tag_mode)
    path = ctx.storage.path(file) if file else None
    if path is None or not path.is_file():
        raise ValueError(f"no such file: {file}")
    import_id = import_id or str(uuid.uuid4())
    with db.transaction(ctx.cdp_url) as conn:
        workspaces.get(conn, workspace)
    stored = upload_path(ctx, import_id, path.name)
    sha = storage.copy(path, stored)
    return record_upload(ctx, import_id=import_id, stored=stored, sha256=sha, file_name=path.name,
                         workspace=workspace, channel=channel, tag_mode=tag_mode, mapping=mapping,
                         require_approval=require_approval, source=source, dag_run_id=dag_run_id)


def record_upload(ctx: Context, *, import_id: str, stored: storage.UPath, sha256: str, file_name: str,
                  workspace: str, channel: str, tag_mode: str, mapping: dict | None = None,
                  require_approval: bool = False, source: str = "api", dag_run_id: str | None = None) -> str:
    """Record an import whose file is already stored (`upload_path`) as waiting."""
    check_options(channel, tag_mode)
    with db.transaction(ctx.cdp_url) as conn:
        ws = workspaces.get(conn, workspace)
        imports.create(conn, workspace_id=ws.id, channel=channel, tag_mode=tag_mode, file_uri=str(stored),
                       file_name=file_name, source=source, mapping=mapping, require_approval=require_approval,
                       import_id=import_id, dag_run_id=dag_run_id)
        imports.update(conn, import_id, file_sha256=sha256, work_dir=str(stored.parent))
    return import_id


def record_run(ctx: Context, import_id: str, dag_run_id: str) -> None:
    with db.transaction(ctx.cdp_url) as conn:
        imports.update(conn, import_id, dag_run_id=dag_run_id)


def import_exists(ctx: Context, import_id: str) -> bool:
    with db.transaction(ctx.cdp_url) as conn:
        return imports.exists(conn, import_id)
