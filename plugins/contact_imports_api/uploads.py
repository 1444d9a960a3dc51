"""A multipart/form-data upload read as it streams in: the form fields kept in memory
(small), the `file` part written straight to storage with its size checked on every
block, so a file over the limit is refused without being read whole. A `.gz` or a `.zip`
holding one file is unpacked on the way (contact_import.unpacking), its unpacked size
limited too: what is stored is the plain file.

The body is read on the event loop; opening, writing, unpacking and closing the stored
file (local disk or object storage) happen in FastAPI's thread pool, in batches of
about BATCH bytes.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable

import anyio
from fastapi import HTTPException, Request, status
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool

from contact_import import storage, unpacking
from contact_import.errors import ImportFileError

FIELD_LIMIT = 64 * 1024  # bytes of one form field (the file excepted)
BATCH = 1 << 20  # bytes handed to a worker thread at a time
FILE_FIELD = "file"


class UploadTooLarge(Exception):
    """The file as sent (`file_too_large`) or unpacked (`unpacked_too_large`) is larger
    than its limit of `limit` bytes."""

    def __init__(self, code: str, limit: int):
        super().__init__(code)
        self.code = code
        self.limit = limit


@dataclass
class Form:
    fields: dict[str, str]
    stored: Any | None  # where the file went (a storage path), None without a file part
    file_name: str  # the file's name as the client sent it
    sha256: str
    size: int


class _StoredFile:
    """The file part on its way to storage; its methods run in worker threads."""

    def __init__(self, place: Callable[[str], Any], max_unpacked: int, remote: bool):
        self.place = place  # file name -> storage path
        self.max_unpacked = max_unpacked
        self.remote = remote  # object storage, which may be out of reach
        self.path: Any = None
        self.unpacker: unpacking.Unpacker | None = None
        self.finished = False

    def _open(self, name: str):
        self.path = self.place(name)
        return self.path.open("wb")

    def apply(self, operations: list[tuple[str, Any]]) -> None:
        """Raises StorageFault when the storage has no room for the file or cannot be reached."""
        try:
            with storage.faults("storing the upload", self.remote,
                                passed_on=(ImportFileError, unpacking.UnpackedTooLarge)):
                self._apply(operations)
        except unpacking.UnpackedTooLarge as exc:
            raise UploadTooLarge("unpacked_too_large", exc.limit) from None

    def _apply(self, operations: list[tuple[str, Any]]) -> None:
        for kind, value in operations:
            if kind == "open":
                self.unpacker = unpacking.Unpacker(value, self._open, self.max_unpacked, storage.scratch_root())
            elif kind == "data":
                self.unpacker.write(value)
            else:
                self.finished = True
                self.unpacker.finish()

    def abort(self) -> None:
        """Best effort: the route removes the import's folder next, or the sweep does later."""
        if self.unpacker is not None:
            with contextlib.suppress(Exception):  # storage out of reach: closing fails too
                self.unpacker.abort()


async def receive_form(request: Request, place: Callable[[str], Any], limit: int, max_unpacked: int,
                       before_file: Callable[[dict[str, str]], None] | None = None, remote: bool = False) -> Form:
    """Parse the request's multipart body; `place(file name)` says where the file goes
    (`remote`: in object storage).
    `before_file(fields so far)` runs in a worker thread as the file part begins, so a
    form that cannot be imported is refused before its file is sent (it may raise).
    Raises UploadTooLarge past `limit` bytes of file or `max_unpacked` bytes unpacked,
    ImportFileError for a compressed file that cannot be unpacked, StorageFault when the
    file cannot be stored, HTTPException for a malformed form."""
    kind, options = parse_options_header(request.headers.get("content-type", ""))
    if kind != b"multipart/form-data" or b"boundary" not in options:
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "send multipart/form-data")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + FIELD_LIMIT:  # the fields are small
        raise UploadTooLarge("file_too_large", limit)

    fields: dict[str, str] = {}
    part: dict[str, Any] = {"header": b"", "value": b"", "headers": {}, "name": None, "data": bytearray()}
    upload: dict[str, Any] = {"name": "", "size": 0, "seen": False}
    stored = _StoredFile(place, max_unpacked, remote)
    pending: list[tuple[str, Any]] = []  # storage work not yet handed to a thread
    pending_bytes = 0

    def on_part_begin() -> None:
        part.update(headers={}, name=None, data=bytearray())

    def on_header_field(data: bytes, start: int, end: int) -> None:
        part["header"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        part["value"] += data[start:end]

    def on_header_end() -> None:
        part["headers"][part["header"].decode("latin-1").lower()] = part["value"]
        part.update(header=b"", value=b"")

    def on_headers_finished() -> None:
        _, disposition = parse_options_header(part["headers"].get("content-disposition", b""))
        part["name"] = disposition.get(b"name", b"").decode("utf-8", "replace")
        if part["name"] == FILE_FIELD:
            if upload["seen"]:
                raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "send one file per upload")
            upload["seen"] = True
            upload["name"] = disposition.get(b"filename", b"upload.csv").decode("utf-8", "replace")
            pending.append(("check", None))
            pending.append(("open", upload["name"]))

    def on_part_data(data: bytes, start: int, end: int) -> None:
        nonlocal pending_bytes
        if part["name"] == FILE_FIELD:
            upload["size"] += end - start
            if upload["size"] > limit:
                raise UploadTooLarge("file_too_large", limit)
            pending.append(("data", data[start:end]))
            pending_bytes += end - start
        else:
            part["data"] += data[start:end]
            if len(part["data"]) > FIELD_LIMIT:
                raise HTTPException(status.HTTP_400_BAD_REQUEST, f"form field {part['name']} is too long")

    def on_part_end() -> None:
        if part["name"] == FILE_FIELD:
            pending.append(("close", None))
        elif part["name"]:
            fields[part["name"]] = part["data"].decode("utf-8", "replace")

    async def flush() -> None:
        nonlocal pending_bytes
        if ("check", None) in pending:  # queued as the file part began, before any of its data
            pending.remove(("check", None))
            if before_file is not None:
                await run_in_threadpool(before_file, dict(fields))
        if pending:
            batch = pending.copy()
            pending.clear()
            pending_bytes = 0
            await run_in_threadpool(stored.apply, batch)

    parser = MultipartParser(options[b"boundary"], callbacks={
        "on_part_begin": on_part_begin, "on_header_field": on_header_field, "on_header_value": on_header_value,
        "on_header_end": on_header_end, "on_headers_finished": on_headers_finished,
        "on_part_data": on_part_data, "on_part_end": on_part_end})
    try:
        async for block in request.stream():
            parser.write(block)
            if pending_bytes >= BATCH or any(kind != "data" for kind, _ in pending):
                await flush()
        parser.finalize()
        await flush()
    finally:
        if not stored.finished:
            with anyio.CancelScope(shield=True):  # also when the request is cancelled
                await run_in_threadpool(stored.abort)
    digest = stored.unpacker.sha256 if stored.unpacker else ""
    return Form(fields, stored.path, upload["name"], digest, upload["size"])
