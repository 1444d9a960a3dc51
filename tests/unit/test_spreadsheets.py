"""Workbooks as people keep them (.xlsx, .xls, .ods), read into the UTF-8 copy: first
sheet, numbers exact, dates as dates, and a number cell read as it is displayed."""
import csv
import datetime
import io
import zipfile
from xml.sax.saxutils import escape

import openpyxl
import pytest
import xlwt

from contact_import import spreadsheet
from contact_import.encoding import to_utf8
from contact_import.errors import ImportFileError
from contact_import.normalisation import normalise_phone, normalise_phones

HEADER = ["LINE User ID", "姓名", "手機", "生日", "Points"]
A, B = "U" + "a" * 32, "U" + "b" * 32
# What every workbook below holds: row 3 is blank, dates are date cells.
EXPECTED = [["__row__", *HEADER],
            ["2", A, "王小明", "886911223344", "1990-01-31", "12.5"],
            ["4", B, "Mary", "85291234567", "1985-12-01", "3"]]


def read(tmp_path, data: bytes):
    src, dest = tmp_path / "upload.csv", tmp_path / "out.csv"  # the stored upload's name says nothing
    src.write_bytes(data)
    info = to_utf8(src, dest)
    with open(dest, encoding="utf-8", newline="") as f:
        return info, list(csv.reader(f))


def xls(rows, formats=None, second_sheet=True) -> bytes:
    book = xlwt.Workbook()
    sheet = book.add_sheet("聯絡人")
    styles = {code: xlwt.easyxf(num_format_str=code) for code in (formats or {}).values()}
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            if value is None:
                continue
            code = (formats or {}).get(c) or ("yyyy/mm/dd" if isinstance(value, datetime.date) else None)
            if code:
                sheet.write(r, c, value, styles.get(code) or xlwt.easyxf(num_format_str=code))
            else:
                sheet.write(r, c, value)
    if second_sheet:
        book.add_sheet("說明").write(0, 0, "not read")
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def _ods_cell(value) -> str:
    if value is None:
        return "<table:table-cell/>"
    if isinstance(value, tuple):  # (number, as LibreOffice displays it)
        number, shown = value
        return (f'<table:table-cell office:value-type="float" office:value="{number}">'
                f"<text:p>{escape(shown)}</text:p></table:table-cell>")
    if isinstance(value, (int, float)):
        return _ods_cell((value, str(value)))
    if isinstance(value, datetime.date):
        return (f'<table:table-cell office:value-type="date" office:date-value="{value.isoformat()}">'
                f"<text:p>{value:%Y/%m/%d}</text:p></table:table-cell>")
    return f'<table:table-cell office:value-type="string"><text:p>{escape(value)}</text:p></table:table-cell>'


def ods(sheets: list[tuple[str, list[list]]]) -> bytes:
    """A spreadsheet laid out as LibreOffice Calc saves one: the uncompressed `mimetype`
    entry first, a manifest, typed cells in content.xml."""
    tables = "".join(f'<table:table table:name="{escape(name)}">' + "".join(
        "<table:table-row>" + "".join(map(_ods_cell, row)) + "</table:table-row>" for row in rows)
        + "</table:table>" for name, rows in sheets)
    content = ('<?xml version="1.0" encoding="UTF-8"?><office:document-content '
               'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
               'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
               'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2">'
               f"<office:body><office:spreadsheet>{tables}</office:spreadsheet></office:body>"
               "</office:document-content>")
    manifest = ('<?xml version="1.0" encoding="UTF-8"?><manifest:manifest '
                'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2">'
                '<manifest:file-entry manifest:full-path="/" '
                'manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>'
                '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
                "</manifest:manifest>")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(zipfile.ZipInfo("mimetype"), "application/vnd.oasis.opendocument.spreadsheet")
        z.writestr("META-INF/manifest.xml", manifest, zipfile.ZIP_DEFLATED)
        z.writestr("content.xml", content, zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def xlsx(rows, formats=None, first_cell="A1") -> bytes:
    """A workbook as Excel leaves one: typed cells, custom number formats on some columns."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "聯絡人"
    top = openpyxl.utils.cell.coordinate_from_string(first_cell)
    row0, col0 = top[1], openpyxl.utils.column_index_from_string(top[0])
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            if value is None:
                continue
            cell = sheet.cell(row0 + r, col0 + c, value)
            if (formats or {}).get(c) and r:
                cell.number_format = formats[c]
            elif isinstance(value, datetime.date):
                cell.number_format = "yyyy/mm/dd"
    book.create_sheet("說明").append(["not read"])
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


ROWS = [HEADER,
        [A, "王小明", 886911223344, datetime.date(1990, 1, 31), 12.5],
        [],
        [B, "Mary", 85291234567.0, datetime.datetime(1985, 12, 1), 3]]


# ---------------------------------------------------------------- every kind of workbook

def test_xls_first_sheet_numeric_phones_exact_and_date_cells_as_dates(tmp_path):
    info, rows = read(tmp_path, xls(ROWS))
    assert (info.encoding, info.delimiter, info.rows, info.header) == ("xls", None, 2, HEADER)
    assert rows == EXPECTED


def test_ods_first_sheet_numeric_phones_exact_and_date_cells_as_dates(tmp_path):
    info, rows = read(tmp_path, ods([("聯絡人", ROWS), ("說明", [["not read"]])]))
    assert (info.encoding, info.delimiter, info.rows, info.header) == ("ods", None, 2, HEADER)
    assert rows == EXPECTED


def test_xlsx_still_reads_the_same(tmp_path):
    info, rows = read(tmp_path, xlsx(ROWS))
    assert (info.encoding, info.rows) == ("xlsx", 2)
    assert rows == EXPECTED


@pytest.mark.parametrize("make", [xls, lambda rows: ods([("s", rows)]), xlsx])
def test_a_table_lower_down_and_to_the_right_keeps_its_sheet_row_numbers(tmp_path, make):
    rows = [[], [], [None, None, *HEADER[:3]], [None, None, A, "Ann", 886911223344]]
    info, out = read(tmp_path, make(rows))
    assert out == [["__row__", *HEADER[:3]], ["4", A, "Ann", "886911223344"]]


def test_a_damaged_xls_is_not_a_table_and_does_not_take_the_worker_down(tmp_path):
    # Cut short, this workbook makes calamine ask for 2 GiB: read in a child process
    # held to XLS_MEMORY_LIMIT, it ends as not_a_table instead.
    data = bytearray(xls(ROWS))
    data[600:] = bytes(len(data) - 600)
    (tmp_path / "upload.csv").write_bytes(bytes(data))
    with pytest.raises(ImportFileError) as exc:
        to_utf8(tmp_path / "upload.csv", tmp_path / "out.csv")
    assert exc.value.issue.code == "not_a_table"
    assert exc.value.issue.params["detail"].startswith("unreadable xls")
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "out.csv.tmp").exists()


# ---------------------------------------------------------------- numbers as displayed

@pytest.mark.parametrize("code, shown", [
    ("0000000000", "0912345678"),  # Excel's Custom format a Taiwanese team types
    ('"0"#########', "0912345678"),  # a literal 0 in front
    ("\\0#########", "0912345678"),
    ("0000-000-000", "0912-345-678"),
    ("[$-404]0000000000", "0912345678"),  # with a locale, as zh-TW Excel saves it
    ("[Blue]0000000000;[Red]-0000000000", "0912345678"),
    ("General", "912345678"),
    ("0", "912345678"),
    ("#,##0", "912345678"),  # thousands separators are not a phone's: plain digits
    ("@", "912345678"),
])
def test_an_xlsx_number_cell_is_read_as_its_format_displays_it(tmp_path, code, shown):
    data = xlsx([["LINE User ID", "Phone"], [A, 912345678]], formats={1: code})
    _, rows = read(tmp_path, data)
    assert rows[1] == ["2", A, shown]


def test_zero_padding_applies_per_cell_and_leaves_text_dates_and_other_columns_alone(tmp_path):
    rows = [["LINE User ID", "Phone", "Birthday", "Points", "Note"],
            [A, 912345678, datetime.date(1990, 1, 31), 7, "0912345678"],
            [B, 886911223344, datetime.date(1985, 12, 1), 8, "text"]]
    book = openpyxl.load_workbook(io.BytesIO(xlsx(rows, first_cell="C3")))
    sheet = book["聯絡人"]
    sheet["D4"].number_format = "0000000000"  # only the first phone is padded
    sheet["F4"].number_format = sheet["F5"].number_format = "000"
    sheet["G4"].number_format = "0000000000"  # a text cell: the format does not apply
    buf = io.BytesIO()
    book.save(buf)
    _, out = read(tmp_path, buf.getvalue())
    assert out[1:] == [["4", A, "0912345678", "1990-01-31", "007", "0912345678"],
                       ["5", B, "886911223344", "1985-12-01", "008", "text"]]


def test_the_first_sheet_is_the_first_tab_whatever_its_part_is_called(tmp_path):
    book = openpyxl.Workbook()
    book.active.append(["not read"])
    first = book.create_sheet("聯絡人", 0)  # stored as sheet2.xml, shown first
    first.append(["LINE User ID", "Phone"])
    first.append([A, 912345678])
    first["B2"].number_format = "0000000000"
    book.worksheets[1]["A1"].number_format = "0000000000"
    buf = io.BytesIO()
    book.save(buf)
    _, out = read(tmp_path, buf.getvalue())
    assert out == [["__row__", "LINE User ID", "Phone"], ["2", A, "0912345678"]]


def test_padding_read_on_every_row_of_a_large_sheet(tmp_path):
    # The sheet's XML is streamed in blocks of 1 MiB: rows on both sides of each block
    # boundary keep their format.
    rows = [["LINE User ID", "Phone"]] + [[f"U{n:032x}", 900000000 + n] for n in range(40_000)]
    data = xlsx(rows, formats={1: "0000000000"})
    info, out = read(tmp_path, data)
    assert info.rows == 40_000
    assert all(r[2] == f"0{900000000 + int(r[0]) - 2}" for r in out[1:])


@pytest.mark.parametrize("code, value, shown", [
    ("0000000000", 912345678, "0912345678"),
    ("0000000000", 0, "0000000000"),
    ("000", 12345, "12345"),  # more digits than placeholders: all shown
    ("###-####", 12345, "1-2345"),
    ("0000000000", 12.5, None),  # not a whole number: plain text as before
    ("0000000000", -5, None),
])
def test_integer_format(code, value, shown):
    assert spreadsheet.integer_format(code)(value) == shown


@pytest.mark.parametrize("code", ["General", "0", "0.00", "#,##0", "0%", "0.00E+00", "yyyy-mm-dd", "@",
                                  "[<=9999999]###-####;(###) ###-####", "# ?/?", '"$"#,##0'])
def test_formats_that_keep_plain_digits(code):
    assert spreadsheet.integer_format(code) is None


# ---------------------------------------------------------------- the lost leading 0

def test_a_number_that_lost_its_leading_zero_is_not_stored_as_another_countrys():
    # 0912345678 typed into a number cell: 912345678, which passes as +91 2345678.
    assert normalise_phone("912345678").ok  # no region: nothing tells the 0 is missing
    lost = normalise_phone("912345678", "TW")
    assert (lost.code, lost.params) == ("phone_leading_zero_lost", {"suggestion": " (886912345678)", "fix": "886912345678"})
    assert normalise_phone("223456789", "TW").code == "phone_leading_zero_lost"  # a Taipei line
    assert normalise_phone("612345678", "IT").params["suggestion"] == " (390612345678)"  # Italy keeps its 0


@pytest.mark.parametrize("raw, region", [
    ("886912345678", "TW"),  # the international form itself
    ("+912345678", "TW"),  # "+": the writer says it is international
    ("85291234567", "TW"),
    ("4915112345678", "DE"),
    ("447911123456", "GB"),
    ("6591234567", "SG"),  # no trunk 0 in Singapore
])
def test_international_numbers_are_not_taken_for_lost_zeros(raw, region):
    assert normalise_phone(raw, region).ok


def test_lost_zero_reported_the_same_from_the_helper_processes(monkeypatch):
    from contact_import import normalisation
    monkeypatch.setattr(normalisation, "PARALLEL_PHONES", 2)
    monkeypatch.setattr(normalisation.os, "cpu_count", lambda: 2)
    results = normalise_phones(["886911223344", "912345678", "886922334455", "223456789"], "TW")
    assert [(r.code, r.params.get("suggestion")) for r in results] == [
        (None, None), ("phone_leading_zero_lost", " (886912345678)"),
        (None, None), ("phone_leading_zero_lost", " (886223456789)")]
    assert [r.params.get("fix") for r in results] == [None, "886912345678", None, "886223456789"]
