"""Compressed import files (docs/operations.md#compressed-uploads): a `.gz`, or a `.zip`
holding one file, unpacked while its bytes arrive, so what is stored, and everything the
DAG reads, is the plain CSV or workbook. Recognised by their first bytes, not their names.

The unpacked size is limited as well as the compressed one, and it is counted from the
bytes actually inflated, never taken from the archive's own header: a zip bomb stops at
the limit, and a header that lies about its size fails the member's CRC check. Output is
inflated at most BLOCK bytes at a time, so memory stays small whatever the ratio.

Light (the standard library only): the API server imports it.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Callable

from .errors import ImportFileError, Issue

GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK\x03\x04"
BLOCK = 1 << 20
# Root entries of zip-based documents, stored as they came: OOXML (.xlsx) and OpenDocument (.ods).
DOCUMENT_ENTRIES = ("[Content_Types].xml", "mimetype")
# What macOS's "Compress" puts beside the file; not a second file.
JUNK_PREFIXES = ("__MACOSX/",)
JUNK_NAMES = (".DS_Store",)


class UnpackedTooLarge(Exception):
    """The file, unpacked, is larger than `limit` bytes."""

    def __init__(self, limit: int):
        super().__init__(f"unpacked larger than {limit} bytes")
        self.limit = limit


def _broken(detail: str) -> ImportFileError:
    return ImportFileError(Issue("archive_unreadable", params={"detail": detail}))


def inner_name(name: str) -> str:
    """The name of what a .gz holds: its own name without `.gz` (`contacts.csv.gz` -> `contacts.csv`)."""
    return name[:-3] if name.lower().endswith(".gz") else name


class Unpacker:
    """One file's bytes in order (`write`), then `finish()`, or `abort()` when the upload
    failed. `open_target(name)` opens the stored file for writing; it is called once, with
    the name of the file that is stored (the archive member's for a .zip), whose
    extension the stored name keeps. Plain bytes and a .gz go to the target as they
    arrive; a .zip is spooled to a local temporary file, since its directory is at its end.
    """

    def __init__(self, name: str, open_target: Callable[[str], BinaryIO], max_unpacked: int,
                 scratch: str | os.PathLike | None = None):
        self.name = name
        self.max_unpacked = max_unpacked
        self.kind: str | None = None  # "plain", "gzip" or "zip", from the first bytes
        self.size = 0  # bytes stored
        self.digest = hashlib.sha256()  # of the bytes stored
        self._open_target = open_target
        self._scratch = scratch
        self._head = b""
        self._target: BinaryIO | None = None
        self._inflater = None
        self._spool: BinaryIO | None = None

    @property
    def sha256(self) -> str:
        return self.digest.hexdigest()

    def write(self, data: bytes) -> None:
        if self.kind is None:
            self._head += data
            if len(self._head) < len(ZIP_MAGIC):
                return
            data, self._head = self._head, b""
            self._start(data)
        self._take(data)

    def finish(self) -> None:
        """The last byte is in: unpack a .zip, check a .gz ended, close the stored file."""
        try:
            if self.kind is None:  # fewer bytes than a magic number
                self._start(self._head)
                self._take(self._head)
            if self.kind == "gzip":
                if self._inflater is not None and not self._inflater.eof:
                    raise _broken("the .gz file ends early")
            elif self.kind == "zip":
                self._extract()
            if self._target is None:
                self._target = self._open_target(self.name)
        finally:
            self.abort()

    def abort(self) -> None:
        """Close what is open (the stored file as far as it got, the spool, which is deleted)."""
        for handle in (self._target, self._spool):
            if handle is not None and not handle.closed:
                handle.close()

    def _start(self, head: bytes) -> None:
        if head.startswith(GZIP_MAGIC):
            self.kind = "gzip"
            self._target = self._open_target(inner_name(self.name))
        elif head.startswith(ZIP_MAGIC):
            self.kind = "zip"
            if self._scratch is not None:
                Path(self._scratch).mkdir(parents=True, exist_ok=True)
            self._spool = tempfile.TemporaryFile(dir=self._scratch)
        else:
            self.kind = "plain"
            self._target = self._open_target(self.name)

    def _take(self, data: bytes) -> None:
        if self.kind == "gzip":
            self._inflate(data)
        elif self.kind == "zip":
            self._spool.write(data)
        else:
            self._store(data, counted=False)

    def _store(self, data: bytes, counted: bool = True) -> None:
        if not data:
            return
        self.size += len(data)
        if counted and self.size > self.max_unpacked:
            raise UnpackedTooLarge(self.max_unpacked)
        self.digest.update(data)
        self._target.write(data)

    def _inflate(self, data: bytes) -> None:
        # A .gz may hold several members one after the other (`cat a.gz b.gz`), and some
        # tools pad the end with zero bytes.
        while data:
            if self._inflater is None or self._inflater.eof:
                if not data.strip(b"\0"):
                    return
                self._inflater = zlib.decompressobj(wbits=31)  # 31: gzip header and trailer
            try:
                self._store(self._inflater.decompress(data, BLOCK))
                while self._inflater.unconsumed_tail:
                    self._store(self._inflater.decompress(self._inflater.unconsumed_tail, BLOCK))
            except zlib.error as exc:
                raise _broken(f"not a valid .gz: {exc}") from None
            data = self._inflater.unused_data if self._inflater.eof else b""

    def _extract(self) -> None:
        self._spool.seek(0)
        try:
            with zipfile.ZipFile(self._spool) as archive:
                entries = archive.infolist()
                names = {entry.filename for entry in entries}
                if any(name in names for name in DOCUMENT_ENTRIES):
                    self._keep_document(entries)
                    return
                files = [e for e in entries if not e.is_dir() and not e.filename.startswith(JUNK_PREFIXES)
                         and PurePosixPath(e.filename).name not in JUNK_NAMES]
                if len(files) != 1:
                    raise ImportFileError(Issue("archive_not_one_file", params={"count": len(files)}))
                (member,) = files
                if member.flag_bits & 0x1:
                    raise _broken("the file in the .zip is encrypted")
                if member.file_size > self.max_unpacked:
                    raise UnpackedTooLarge(self.max_unpacked)  # as declared: no need to inflate it
                self._target = self._open_target(PurePosixPath(member.filename).name)
                with archive.open(member) as source:
                    for block in iter(lambda: source.read(BLOCK), b""):
                        self._store(block)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
            raise _broken(f"not a valid .zip: {exc}") from None

    def _keep_document(self, entries: list[zipfile.ZipInfo]) -> None:
        """A workbook is a zip itself: stored as it came, once its declared unpacked size
        passes the limit (the DAG's spreadsheet reader inflates it)."""
        if sum(entry.file_size for entry in entries) > self.max_unpacked:
            raise UnpackedTooLarge(self.max_unpacked)
        self._target = self._open_target(self.name)
        self._spool.seek(0)
        for block in iter(lambda: self._spool.read(BLOCK), b""):
            self._store(block, counted=False)
