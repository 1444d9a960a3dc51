"""Files at the edges (docs/design.md#the-import-file): a 10 MB cell, a million columns, a
header of 10,000 columns, an .xlsx whose shared strings (or cells) inflate to gigabytes,
NUL bytes, invalid UTF-8 in the middle of a UTF-8 file.

Each is built here and answered by its code (and its row where it has one) three ways:
the reading stage (reading.detect, reading.map_file) in a child process whose peak
memory is measured, the upload's early check (intake.check_file), and the DAG's tasks,
which reject the file with nothing written.
"""
from __future__ import annotations

import csv
import json
import struct
import subprocess
import sys
import textwrap
import zipfile
import zlib
from pathlib import Path

import pytest

from contact_import import import_folder, intake, statuses, storage
from contact_import.errors import CODES
from tests.helpers import LINE_HEADER, ctx, line_id, run_stages, table_counts

MEMORY_TARGET_MIB = 512  # issue 17's target: peak RSS of any stage
# A text file is read a row at a time, and a row is cut at encoding.ROW_LIMIT characters.
TEXT_FILE_MIB = 128
# A safety net for the shared machine: should a change let a file be read whole again,
# the child fails at this size instead of taking the machine's memory.
CHILD_ADDRESS_SPACE = 3 << 30
ROWS = [f"{line_id(n)},Person {n},p{n}@example.com,,,,VIP,,,,{n}" for n in range(1, 3)]


def text_file(path: Path, lines: list[str | bytes], encoding: str = "utf-8") -> Path:
    with open(path, "wb") as f:
        for line in lines:
            f.write(line if isinstance(line, bytes) else line.encode(encoding))
            f.write(b"\n")
    return path


# ---------------------------------------------------------------- the files

def ten_mb_cell(tmp_path):
    # one line: the cell is read no further than the row limit
    return text_file(tmp_path / "big-cell.csv", [LINE_HEADER, ROWS[0], f"{line_id(9)},{'x' * (10 << 20)},,,,,,,,,"])


def ten_mb_quoted_cell(tmp_path):
    # a quoted cell of many lines, as a quote left open swallows the rest of a file
    cell = '"' + "x\n" * (5 << 20) + '"'
    return text_file(tmp_path / "big-quoted-cell.csv", [LINE_HEADER, ROWS[0], f"{line_id(9)},{cell},,,,,,,,,"])


def million_column_header(tmp_path):
    header = LINE_HEADER + "".join(f",Column {n}" for n in range(1_000_000))
    return text_file(tmp_path / "million-columns.csv", [header, *ROWS])


def million_cell_row(tmp_path):
    return text_file(tmp_path / "million-cells.csv", [LINE_HEADER, ROWS[0], ROWS[1] + ",x" * 1_000_000])


def five_million_cell_row(tmp_path):
    # 20 MB: the row itself is over the row limit
    return text_file(tmp_path / "million-long-cells.csv", [LINE_HEADER, ROWS[0], ROWS[1] + ",abc" * 5_000_000])


def header_of_10000_columns(tmp_path):
    return text_file(tmp_path / "wide.csv", [LINE_HEADER + "".join(f",Attribute {n}" for n in range(10_000)), *ROWS])


def xlsx_header_of_10000_columns(tmp_path):
    header = LINE_HEADER.split(",") + [f"Attribute {n}" for n in range(10_000)]
    rows = [[f"<c t=\"inlineStr\"><is><t>{cell}</t></is></c>" for cell in header]]
    rows += [[f"<c t=\"inlineStr\"><is><t>{cell}</t></is></c>" for cell in line.split(",") if cell] for line in ROWS]
    sheet = "".join(f'<row r="{n}">{"".join(cells)}</row>' for n, cells in enumerate(rows, 1))
    return write_zip(tmp_path / "wide.xlsx", xlsx_parts(sheet))


def shared_strings_bomb(tmp_path):
    """An .xlsx of 4 MiB whose sharedStrings.xml inflates to 3 GiB of tiny strings."""
    head = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
            b"<si><t>LINE User ID</t></si><si><t>Ann</t></si>")
    strings = deflated_repeats(head, b"<si><t>x</t></si>" * (1 << 16), 3 * 1024, b"</sst>")
    sheet = '<row r="1"><c r="A1" t="s"><v>0</v></c></row><row r="2"><c r="A2" t="s"><v>1</v></c></row>'
    return write_zip(tmp_path / "shared-strings-bomb.xlsx",
                     xlsx_parts(sheet, shared_strings=True) + [("xl/sharedStrings.xml", strings)])


def repeated_cells_bomb(tmp_path):
    """Tiny shared strings, one of them 1 MiB, and 3,000 cells that each repeat it:
    nothing in the file is large, but a reader copying each cell's text needs 3 GiB."""
    strings = ('<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
               f"<si><t>LINE User ID</t></si><si><t>{'x' * (1 << 20)}</t></si></sst>")
    rows = ['<row r="1"><c r="A1" t="s"><v>0</v></c></row>']
    rows += [f'<row r="{n}"><c r="A{n}" t="s"><v>1</v></c></row>' for n in range(2, 3002)]
    return write_zip(tmp_path / "repeated-cells-bomb.xlsx",
                     xlsx_parts("".join(rows), shared_strings=True) + [("xl/sharedStrings.xml", strings.encode())])


def nul_in_first_bytes(tmp_path):
    return text_file(tmp_path / "nul-head.csv", [LINE_HEADER, ROWS[0], ROWS[1].replace("Person", "Per\0son")])


def nul_padding_after_first_mib(tmp_path):
    # a file padded with NULs past its end, as a copy cut short leaves it: 20 MB of them
    rows = [f"{line_id(n)},Person {n},p{n}@example.com,,,,VIP,,,,{n}" for n in range(1, 20_001)]
    path = text_file(tmp_path / "nul-padded.csv", [LINE_HEADER, *rows])
    with open(path, "ab") as f:
        f.write(bytes(20 << 20))
    return path


def nul_in_a_row_after_first_mib(tmp_path):
    rows = [f"{line_id(n)},Person {n},p{n}@example.com,,,,VIP,,,,{n}" for n in range(1, 30_001)]
    rows[25_000] = rows[25_000].replace("Person", "Per\0son")  # line 25,002
    return text_file(tmp_path / "nul-late.csv", [LINE_HEADER, *rows])


def invalid_utf8_after_first_mib(tmp_path):
    rows = [f"{line_id(n)},陳怡君 {n},p{n}@example.com,,,,VIP,,,,{n}" for n in range(1, 30_001)]
    rows[25_000] = rows[25_000].encode().replace("怡".encode(), b"\xe6\xff")  # line 25,002
    return text_file(tmp_path / "bad-utf8-late.csv", [LINE_HEADER, *rows])


def invalid_utf8_in_first_bytes(tmp_path):
    rows = [f"{line_id(n)},陳怡君 {n},p{n}@example.com,,,,VIP,,,,{n}" for n in range(1, 101)]
    rows[50] = rows[50].encode().replace("怡".encode(), b"\xe6\xff")  # line 52
    return text_file(tmp_path / "bad-utf8.csv", [LINE_HEADER, *rows])


# ---------------------------------------------------------------- .xlsx written by hand

def xlsx_parts(sheet_data: str, shared_strings: bool = False) -> list[tuple[str, bytes]]:
    ns = "http://schemas.openxmlformats.org"
    rel = f"{ns}/officeDocument/2006/relationships"
    strings_rel = (f'<Relationship Id="rId2" Type="{rel}/sharedStrings" Target="sharedStrings.xml"/>'
                   if shared_strings else "")
    parts = {
        "[Content_Types].xml": f'<Types xmlns="{ns}/package/2006/content-types">'
        f'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        f'<Default Extension="xml" ContentType="application/xml"/>'
        f'<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.'
        f'spreadsheetml.sheet.main+xml"/></Types>',
        "_rels/.rels": f'<Relationships xmlns="{ns}/package/2006/relationships">'
        f'<Relationship Id="rId1" Type="{rel}/officeDocument" Target="xl/workbook.xml"/></Relationships>',
        "xl/workbook.xml": f'<workbook xmlns="{ns}/spreadsheetml/2006/main" xmlns:r="{rel}">'
        f'<sheets><sheet name="Contacts" sheetId="1" r:id="rId1"/></sheets></workbook>',
        "xl/_rels/workbook.xml.rels": f'<Relationships xmlns="{ns}/package/2006/relationships">'
        f'<Relationship Id="rId1" Type="{rel}/worksheet" Target="worksheets/sheet1.xml"/>{strings_rel}'
        f"</Relationships>",
        "xl/worksheets/sheet1.xml": f'<worksheet xmlns="{ns}/spreadsheetml/2006/main">'
        f"<sheetData>{sheet_data}</sheetData></worksheet>",
    }
    return [(name, zlib_member(text.encode())) for name, text in parts.items()]


def zlib_member(data: bytes):
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush(), zlib.crc32(data), len(data)


def deflated_repeats(head: bytes, unit: bytes, times: int, tail: bytes):
    """head + unit * times + tail as one raw deflate stream, made in a moment: after a
    sync flush, deflating the same unit again gives the same bytes, so they are repeated."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = c.compress(head + unit) + c.flush(zlib.Z_SYNC_FLUSH)
    again = c.compress(unit) + c.flush(zlib.Z_SYNC_FLUSH)
    assert c.compress(unit) + c.flush(zlib.Z_SYNC_FLUSH) == again
    end = c.compress(tail) + c.flush()
    crc = zlib.crc32(head + unit)
    for _ in range(times - 1):
        crc = zlib.crc32(unit, crc)
    crc = zlib.crc32(tail, crc)
    data = first + again * (times - 1) + end
    size = len(head) + len(unit) * times + len(tail)
    assert size < 1 << 32  # no zip64 needed
    return data, crc, size


def write_zip(path: Path, members: list[tuple[str, object]]) -> Path:
    """A zip of deflated members given as (name, (deflated, crc, size)) or (name, bytes)."""
    central, offset = b"", 0
    with open(path, "wb") as f:
        for name, member in members:
            deflated, crc, size = zlib_member(member) if isinstance(member, bytes) else member
            encoded = name.encode()
            local = struct.pack("<4s2B4HL2L2H", b"PK\x03\x04", 20, 0, 0, 8, 0, 0x21, crc, len(deflated), size,
                                len(encoded), 0)
            f.write(local + encoded + deflated)
            central += struct.pack("<4s4B4HL2L5H2L", b"PK\x01\x02", 20, 3, 20, 0, 0, 8, 0, 0x21, crc,
                                   len(deflated), size, len(encoded), 0, 0, 0, 0, 0o644 << 16, offset) + encoded
            offset += len(local) + len(encoded) + len(deflated)
        f.write(central + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(members), len(members), len(central),
                                      offset, 0))
    with zipfile.ZipFile(path) as z:  # a well-formed zip, which any reader opens
        assert [i.filename for i in z.infolist()] == [name for name, _ in members]
    return path


# ---------------------------------------------------------------- the reading stage, measured

READ = textwrap.dedent("""
    import json, resource, sys
    from pathlib import Path
    resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
    from contact_import import db, reading, workspaces
    from contact_import.errors import ImportFileError
    source, work, url = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    answer = {{}}
    try:
        reading.detect(source, work)
        with db.transaction(url) as conn:
            column_map = reading.map_file(conn, workspaces.get(conn, "demo"), "line", work, None)
        issues = [i for i in column_map.issues if i.severity == "error"]
        answer["issues"] = [[i.code, i.row, i.column] for i in issues[:5]]
        answer["issue_count"] = len(issues)
    except ImportFileError as exc:
        answer["issues"] = [[exc.issue.code, exc.issue.row, exc.issue.column]]
        answer["params"] = exc.issue.params
        answer["issue_count"] = 1
    answer["written"] = sorted(p.name for p in work.iterdir())
    # this process's own peak since it started (ru_maxrss would keep the peak of the
    # process it was forked from); its workbook reader's (an upper bound: that one's
    # ru_maxrss includes this process's size when it was started)
    status = dict(line.split(":", 1) for line in open("/proc/self/status"))
    answer["self_kib"] = int(status["VmHWM"].split()[0])
    answer["children_kib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps(answer))
""")


def read_in_child(path: Path, work: Path, url: str) -> dict:
    """The reading stage on `path` in a fresh process: its answer and peak memory (the
    process and, for a workbook, its reader child, added up as if both peaked at once)."""
    work.mkdir()
    script = READ.format(limit=CHILD_ADDRESS_SPACE)
    proc = subprocess.run([sys.executable, "-c", script, str(path), str(work), url], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    answer = json.loads(proc.stdout.strip().splitlines()[-1])
    answer["peak_mib"] = (answer["self_kib"] + answer["children_kib"]) / 1024
    return answer


# ---------------------------------------------------------------- the cases

# (make the file, code, row, what the upload's early check answers: the same code, or
# nothing where the file's first MiB does not show it and the DAG finds it)
CASES = {
    "10 MB cell": (ten_mb_cell, "malformed_csv", 3, "later"),
    "10 MB quoted cell": (ten_mb_quoted_cell, "malformed_csv", 3, "later"),
    "million-column header": (million_column_header, "too_many_columns", 1, "same"),
    "row of a million cells": (million_cell_row, "malformed_csv", 3, "later"),
    "row of five million cells": (five_million_cell_row, "malformed_csv", 3, "later"),
    "header of 10,000 columns": (header_of_10000_columns, "too_many_columns", 1, "same"),
    "xlsx header of 10,000 columns": (xlsx_header_of_10000_columns, "too_many_columns", 1, "same"),
    "xlsx shared strings bomb": (shared_strings_bomb, "workbook_too_large", None, "same"),
    "xlsx repeated cells bomb": (repeated_cells_bomb, "workbook_too_large", None, "same"),
    "NUL in the first bytes": (nul_in_first_bytes, "not_a_table", None, "same"),
    "NUL padding after the first MiB": (nul_padding_after_first_mib, "not_a_table", 20_002, "later"),
    "NUL in a row after the first MiB": (nul_in_a_row_after_first_mib, "not_a_table", 25_002, "later"),
    "invalid UTF-8 after the first MiB": (invalid_utf8_after_first_mib, "encoding_undetectable", 25_002, "later"),
    "invalid UTF-8 in the first bytes": (invalid_utf8_in_first_bytes, "encoding_undetectable", 52, "same"),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("edges")
    return {name: make(folder) for name, (make, *_) in CASES.items()}


@pytest.mark.parametrize("name", CASES)
def test_the_reading_stage_answers_its_code_in_bounded_memory(cdp_url, demo_workspace, files, tmp_path, name):
    _, code, row, _ = CASES[name]
    answer = read_in_child(files[name], tmp_path / "work", cdp_url)
    assert answer["issues"][0][:2] == [code, row], answer
    assert answer["issue_count"] == 1 and code in CODES
    assert answer["written"] == []  # no UTF-8 copy, not even a partial one
    peaks = {k: answer[k] for k in ("self_kib", "children_kib")}
    assert answer["peak_mib"] < MEMORY_TARGET_MIB, peaks
    if not files[name].suffix == ".xlsx":
        assert answer["peak_mib"] < TEXT_FILE_MIB, peaks


@pytest.mark.parametrize("name", CASES)
def test_the_upload_check_answers_the_same_code(cdp_url, demo_workspace, files, name):
    _, code, row, at_upload = CASES[name]
    issues = intake.check_file(ctx(cdp_url), storage.UPath(files[name]), workspace="demo", channel="line")
    if at_upload == "same":
        assert [(i.code, i.row) for i in issues] == [(code, row)]
    else:  # the first MiB is fine: the DAG's first task finds it (below)
        assert issues == []


@pytest.mark.parametrize("name", CASES)
def test_the_import_is_rejected_with_its_code_and_nothing_written(cdp_url, demo_workspace, files, name):
    _, code, row, _ = CASES[name]
    before = table_counts(cdp_url)
    record = run_stages(cdp_url, files[name])
    assert record["status"] == statuses.VALIDATION_FAILED
    assert json.loads(record["message"]) == {code: 1}
    with ctx(cdp_url).storage.path(record["error_report"]).open("r", encoding="utf-8-sig", newline="") as f:
        report = list(csv.DictReader(f))
    assert [(r["code"], r["row"]) for r in report] == [(code, str(row) if row else "")]
    assert report[0]["message"]
    after = table_counts(cdp_url)
    assert after.pop("imports") == before.pop("imports") + 1
    assert after == before


def test_limits_hold_for_files_just_inside_them(cdp_url, demo_workspace, tmp_path):
    # 1,000 columns (the limit) are read, and mapped: each unknown one named once
    header = LINE_HEADER + "".join(f",Attribute {n}" for n in range(1000 - 11))
    path = text_file(tmp_path / "at-the-limit.csv", [header, *ROWS])
    answer = read_in_child(path, tmp_path / "work", cdp_url)
    assert answer["issue_count"] == 989 and answer["issues"][0][0] == "unknown_column"
    assert answer["written"] == [import_folder.UTF8]
    assert answer["peak_mib"] < MEMORY_TARGET_MIB


# ---------------------------------------------------------------- the upload route

@pytest.fixture
def upload_api(cdp_url, demo_workspace, monkeypatch):
    """The plugin's routes as tests/integration/test_plugin_routes.py serves them: the
    caller allowed everything, Airflow a stand-in that records the runs triggered."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from contact_import.endpoints import PLUGIN_PREFIX
    from tests.integration import test_plugin_routes as routes

    airflow = routes.Airflow()
    monkeypatch.setattr(routes.airflow_client, "trigger", airflow.trigger)
    monkeypatch.setattr(routes.airflow_client, "fail_run", airflow.fail_run)
    monkeypatch.setattr(routes.runs, "triggering_users", airflow.triggering_users)
    routes.act_as(routes.airflow_user())
    routes.app.dependency_overrides[routes.cdp.cdp_context] = lambda: ctx(cdp_url)
    server = FastAPI()
    server.mount(PLUGIN_PREFIX, routes.app)
    yield TestClient(server), airflow
    routes.app.dependency_overrides.clear()


@pytest.mark.parametrize("name", [name for name, case in CASES.items() if case[3] == "same"])
def test_the_upload_route_refuses_the_file_with_its_code(upload_api, cdp_url, files, name):
    from tests.helpers import upload

    client, airflow = upload_api
    _, code, row, _ = CASES[name]
    status = 422
    if name == "xlsx shared strings bomb":
        # refused sooner still: the upload declares 3 GiB unpacked (docs/operations.md#uploads)
        status, code = 413, "unpacked_too_large"
    before = table_counts(cdp_url)
    answer = upload(client, files[name].read_bytes(), name=files[name].name)
    assert answer.status_code == status, answer.text
    assert [(e["code"], e["row"]) for e in answer.json()["errors"]] == [(code, row)]
    assert table_counts(cdp_url) == before and airflow.triggered == []  # not even an import recorded
