"""The first two stages, which need only the file's bytes and header: its UTF-8 copy
(encoding, delimiter, rows) and its columns mapped to fields. Light: no pandas."""
from __future__ import annotations

import csv
from pathlib import Path

from . import encoding, import_folder, workspaces
from .channels import get_channel
from .mapping import ColumnMap, map_columns
from .storage import UPath, faults


def detect(source: Path, work_dir: Path) -> encoding.SourceInfo:
    """The file's UTF-8 copy in `work_dir`; a disk without room for it is `storage_full`
    (to_utf8 leaves no part of it)."""
    with faults(f"writing {import_folder.UTF8}"):
        return encoding.to_utf8(source, work_dir / import_folder.UTF8)


def read_header(folder: UPath | Path) -> list[str]:
    """The UTF-8 copy's header, read straight from storage (a task needs no more of the file)."""
    # the csv module, not pandas: pandas renames a repeated header ("Name.1")
    with (folder / import_folder.UTF8).open("r", encoding="utf-8", newline="") as f:
        return next(csv.reader(f))[1:]


def map_file(conn, ws: workspaces.Workspace, channel_name: str, folder: UPath | Path,
             explicit: dict | None) -> ColumnMap:
    return map_columns(read_header(folder), get_channel(channel_name), workspaces.attributes(conn, ws.id),
                       explicit)
