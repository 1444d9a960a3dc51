"""Shared helpers for the tests: run an import through the library's stages, read exports."""
from __future__ import annotations

import io
import json
import socket
from pathlib import Path

from contact_import import context, db, export, imports, intake, tasks, workspaces
from contact_import.endpoints import API_URL_PREFIX

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

STAGES = (tasks.detect_encoding, tasks.map_columns, tasks.validate,
          tasks.upsert_contacts, tasks.bind_teammates, tasks.finalize)

LINE_HEADER = ("LINE User ID,Name,Email,Phone,Gender,Birthday,Tags,Binding Teammate,Store Location Code,"
               "VIP Level,Points")


def ctx(url: str) -> context.Context:
    """The context the CLI builds for the CDP database `url` (storage: CONTACT_IMPORT_STORAGE)."""
    return context.for_command_line(url)


def line_id(n: int) -> str:
    return "U" + f"{n:032x}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def run_stages(url: str, file: Path, workspace: str = "demo", channel: str = "line",
               tag_mode: str = "append", mapping: dict | None = None, require_approval: bool = False,
               complete_local_phones: bool = False) -> dict:
    """The DAG's tasks in order, called directly (no Airflow): the import record at the end.
    With require_approval the import has a preview (and is approved at once)."""
    import_id = intake.create_import(ctx(url), workspace=workspace, channel=channel, tag_mode=tag_mode,
                                     file=str(file), mapping=mapping, source="cli",
                                     require_approval=require_approval, complete_local_phones=complete_local_phones)
    return run_recorded(url, import_id)


def run_recorded(url: str, import_id: str) -> dict:
    """The stages of an import already recorded (upload API, feed); the record at the end."""
    for stage in STAGES:
        try:
            stage(ctx(url), import_id)
        except tasks.StageError:
            break
    with db.transaction(url) as conn:
        return imports.get(conn, import_id)


def csv_bytes(rows: int, start: int = 0) -> bytes:
    """A LINE file of `rows` new contacts, as bytes to upload."""
    lines = [LINE_HEADER] + [f"{line_id(start + n)},Person {n},p{start + n}@example.com,,,,VIP,,,,{n}"
                             for n in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def upload(client, content: bytes, name="contacts.csv", **form):
    """POST a file to the upload API (an httpx client or FastAPI's TestClient)."""
    data = {"workspace": "demo", "channel": "line", "tag_mode": "append", **form}
    return client.post(f"{API_URL_PREFIX}/imports", data=data, files={"file": (name, io.BytesIO(content), "text/csv")})


def multipart_stream(file_blocks, boundary=b"xYzBoundary", **fields):
    """A multipart body sent in blocks without a Content-Length (chunked)."""
    yield from (b"--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n"
                % (boundary, name.encode(), value.encode()) for name, value in fields.items())
    yield (b"--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.csv\"\r\n"
           b"Content-Type: text/csv\r\n\r\n" % boundary)
    yield from file_blocks
    yield b"\r\n--%s--\r\n" % boundary


def exported(url: str, workspace: str = "demo") -> dict[str, dict]:
    """export --format jsonl, keyed by user id."""
    with db.transaction(url) as conn:
        ws = workspaces.get(conn, workspace)
        out = io.StringIO()
        export.write(export.contacts(conn, ws.id), out)
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    return {r["user_id"]: r for r in records}


def without_customer_ids(contacts: dict[str, dict]) -> dict[str, dict]:
    """exported() with customer ids blanked: ids differ between databases, the rest must not."""
    return {k: {**v, "customer_id": None} for k, v in contacts.items()}


def customer_groups(contacts: dict[str, dict]) -> set[frozenset]:
    """Which contacts (by User ID) share a customer, from exported()."""
    return {frozenset(u for u, c in contacts.items() if c["customer_id"] == cid)
            for cid in {c["customer_id"] for c in contacts.values()}}


def issue_keys(issues) -> list[tuple]:
    """Issues as comparable, sorted tuples (code, row, column, value, params)."""
    return sorted((i.code, i.row, i.column, i.value, tuple(sorted(i.params.items()))) for i in issues)


def table_counts(url: str) -> dict[str, int]:
    """Rows in every cdp table: what 'nothing was written' is checked against."""
    with db.transaction(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'cdp'"
                    " AND table_name <> 'alembic_version' ORDER BY 1")
        tables = [t for (t,) in cur.fetchall()]
        counts = {}
        for table in tables:
            cur.execute(f"SELECT count(*) FROM cdp.{table}")
            counts[table] = cur.fetchone()[0]
        return counts
