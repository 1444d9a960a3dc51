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

import hashlib
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from upath import UPath


LOCAL_PROTOCOLS = ("", "file", "local")
BLOCK = 1 << 20

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
        copied back when the block ends, also when it raises (a rejected file's report must
        reach storage; a retry overwrites the rest)."""
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
                if (remote / name).exists():
                    copy(remote / name, UPath(local / name))
            try:
                yield local
            finally:
                for name in publish:
                    if (local / name).exists():
                        copy(UPath(local / name), remote / name)
        finally:
            shutil.rmtree(local, ignore_errors=True)


def is_local(location: UPath) -> bool:
    return location.protocol in LOCAL_PROTOCOLS


def local_path(location: UPath) -> Path:
    return Path(location.path)


def copy(source: UPath, target: UPath) -> str:
    """Stream `source` to `target` (any protocols); returns the content's SHA-256."""
    digest = hashlib.sha256()
    if is_local(target):
        local_path(target).parent.mkdir(parents=True, exist_ok=True)
    with source.open("rb") as src, target.open("wb") as dst:
        for block in iter(lambda: src.read(BLOCK), b""):
            digest.update(block)
            dst.write(block)
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
