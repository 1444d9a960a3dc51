"""Where imports keep their files (docs/operations.md): CONTACT_IMPORT_STORAGE, a folder or a
URI (`file://`, `s3://`, any fsspec protocol).

Paths are universal-pathlib paths. A `Storage` is built by each entry point: inside
Airflow the DAGs and the plugin build it on Airflow's ObjectStoragePath, so the same
code goes through Airflow's object storage and takes its credentials from Airflow
connections (`s3://aws_default@bucket/...`); this module itself never imports Airflow.

The stages read and write local files (pandas, csv, GX). `local_folder` gives a task a
local folder holding the files it needs from an import's folder in storage and puts back
the ones it writes, so the tasks of one run may execute on different workers. When the
storage is a local folder, that folder is used as it is: nothing is copied.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import tempfile
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator

from upath import UPath

from .errors import Issue

LOCAL_PROTOCOLS = ("", "file", "local")
BLOCK = 1 << 20
FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)  # no room: the disk, the process's file size limit, a quota


class StorageFault(Exception):
    """Storage could not take or give an import's files: full (`storage_full`) or not
    reachable (`storage_unavailable`). Not the file's fault: the step fails, Airflow
    retries it, and nothing half-written is left (docs/operations.md#faults)."""

    def __init__(self, code: str, detail: str):
        self.issue = Issue(code, params={"detail": detail})
        super().__init__(f"{code}: {self.issue.message()}")


@contextmanager
def faults(what: str, remote: bool = False, passed_on: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """Storage's errors while doing `what` as StorageFault: no room, anywhere; and with
    `remote`, any other error but a missing file (refused, timed out, a 5xx: fsspec
    backends raise their own kinds) or one of `passed_on` (the caller's own)."""
    try:
        yield
    except (StorageFault, *passed_on):
        raise
    except OSError as exc:
        if exc.errno in FULL:
            where = f" ({exc.filename})" if exc.filename else ""
            raise StorageFault("storage_full", f"{what}: {exc.strerror or exc}{where}") from exc
        if not remote or isinstance(exc, FileNotFoundError):
            raise
        raise StorageFault("storage_unavailable", f"{what}: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:
        if not remote:
            raise
        raise StorageFault("storage_unavailable", f"{what}: {type(exc).__name__}: {exc}") from exc


class Storage:
    """Import folders under one base folder or URI, as paths of one path class."""

    def __init__(self, base: str | os.PathLike, path_class: type = UPath):
        self.path_class = path_class
        self.base = self.path(base)

    def path(self, location: str | os.PathLike) -> UPath:
        """A storage path for a folder, a file path or a URI."""
        text = os.fspath(location)
        if "://" not in text:
            text = str(Path(text).expanduser().absolute())
        return self.path_class(text)

    def import_folder(self, import_id: str) -> UPath:
        """The folder of one import's files: the upload, its UTF-8 copy, normalised rows, reports."""
        folder = self.base / "imports" / import_id
        if is_local(folder):
            local_path(folder).mkdir(parents=True, exist_ok=True)
        return folder

    @contextmanager
    def local_folder(self, folder: str | os.PathLike, fetch: Iterable[str] = (),
                     publish: Iterable[str] = ()) -> Iterator[Path]:
        """A local folder standing for the storage folder `folder`: the files named in `fetch`
        that exist there are copied in first; the files named in `publish` that exist here are
        copied back when the block ends without an error (a step that fails keeps nothing
        of its work; a rejection publishes its reports itself, `publish`). Storage that
        cannot be reached raises StorageFault."""
        remote = self.path(folder)
        if is_local(remote):
            local = local_path(remote)
            local.mkdir(parents=True, exist_ok=True)
            yield local
            return
        local = scratch_root() / hashlib.sha256(str(remote).encode()).hexdigest()[:24]
        shutil.rmtree(local, ignore_errors=True)  # what an earlier task left here may be stale
        local.mkdir(parents=True)
        try:
            for name in fetch:
                with faults(f"reading {name} from {remote}", remote=True):
                    if (remote / name).exists():
                        copy(remote / name, UPath(local / name))
            yield local
            self.publish(local, folder, publish)
        finally:
            shutil.rmtree(local, ignore_errors=True)

    def publish(self, local: Path, folder: str | os.PathLike, names: Iterable[str]) -> None:
        """Copy the files named in `names` that exist in `local` to the storage folder
        `folder` (nothing to do when `local` is that folder). Each lands whole or not at all
        (copy); unreachable storage raises StorageFault."""
        remote = self.path(folder)
        if is_local(remote) and local_path(remote) == local:
            return
        for name in names:
            if (local / name).exists():
                with faults(f"writing {name} to {remote}", remote=not is_local(remote)):
                    copy(UPath(local / name), remote / name)


def is_local(location: UPath) -> bool:
    return location.protocol in LOCAL_PROTOCOLS


def local_path(location: UPath) -> Path:
    return Path(location.path)


def copy(source: UPath, target: UPath) -> str:
    """Stream `source` to `target` (any protocols); returns the content's SHA-256. The
    target is whole or absent: a local one is written under a temporary name and renamed;
    an object store's object appears when complete, and one a failed write committed
    anyway (an fsspec file commits what it has when closed) is removed."""
    digest = hashlib.sha256()

    def stream(dst) -> None:
        with source.open("rb") as src:
            for block in iter(lambda: src.read(BLOCK), b""):
                digest.update(block)
                dst.write(block)

    if is_local(target):
        final = local_path(target)
        final.parent.mkdir(parents=True, exist_ok=True)
        part = final.with_name(f".{final.name}.part")
        try:
            with open(part, "wb") as dst:
                stream(dst)
            os.replace(part, final)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        return digest.hexdigest()
    try:
        with target.open("wb") as dst:
            stream(dst)
    except BaseException:
        with contextlib.suppress(Exception):  # unreachable, it holds nothing of this write either
            target.fs.rm(target.path)
        raise
    return digest.hexdigest()


def sha256(location: UPath) -> str:
    digest = hashlib.sha256()
    with location.open("rb") as src:
        for block in iter(lambda: src.read(BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def remove_tree(folder: UPath) -> None:
    if is_local(folder):
        shutil.rmtree(local_path(folder), ignore_errors=True)
    elif folder.exists():
        folder.fs.rm(folder.path, recursive=True)


def last_change(folder: UPath) -> datetime | None:
    """When anything in `folder` last changed: its newest file's modification time, or the
    folder's own when it holds none (local); None when storage gives no time."""
    if is_local(folder):
        root = local_path(folder)
        stamps = [p.stat().st_mtime for p in (root, *root.rglob("*"))]
        return datetime.fromtimestamp(max(stamps), timezone.utc)
    stamps = []
    for info in folder.fs.find(folder.path, detail=True).values():
        stamp = info.get("LastModified") or info.get("mtime") or info.get("created")
        if isinstance(stamp, (int, float)):
            stamp = datetime.fromtimestamp(stamp, timezone.utc)
        if isinstance(stamp, datetime):
            stamps.append(stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc))
    return max(stamps, default=None)


def move(source: UPath, folder: UPath) -> UPath:
    """Move a file into `folder` (created if needed), keeping its name unless one is taken there."""
    target = folder / source.name
    n = 1
    while target.exists():
        target = folder / f"{Path(source.name).stem}.{n}{Path(source.name).suffix}"
        n += 1
    if is_local(source) and is_local(folder):
        local_path(folder).mkdir(parents=True, exist_ok=True)
        os.replace(local_path(source), local_path(target))
    else:
        source.fs.mv(source.path, target.path)
    return target


def scratch_root() -> Path:
    return Path(os.environ.get("CONTACT_IMPORT_SCRATCH") or Path(tempfile.gettempdir()) / "contact-import")
