"""Workbooks (.xlsx, .xls, .ods; the first sheet) read with python-calamine into the same
UTF-8 CSV that encoding.to_utf8 writes for text files.

Cells come typed: a phone typed as a number is a float, so it is written as its exact
integer digits (never 8.86911E+11); dates are written as YYYY-MM-DD.

A number is written as the sheet displays it when an .xlsx cell's number format pads or
decorates whole numbers (`0000000000` shows 912345678 as 0912345678): the leading 0 of
a local phone number lives only in that format, and without it the digits read as
another country's number. python-calamine does not expose formats, so they are read
from the workbook's own XML (styles.xml, then the first sheet's cell style indexes,
streamed alongside calamine's rows and only when some style needs it). .xls and .ods
formats are not read; such cells keep their digits, and normalisation rejects a phone
whose leading 0 was lost.
"""
from __future__ import annotations

import datetime
import json
import math
import os
import posixpath
import re
import signal
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from xml.etree import ElementTree

from python_calamine import CalamineWorkbook

# calamine holds a whole sheet in memory, and a workbook can ask for far more than its
# size: a damaged .xls asks for 2 GiB when cut short, an .xlsx whose shared strings or
# cells are a "zip bomb" (a few KiB that inflate to gigabytes) for as much as they
# inflate to. So every workbook is read in a child process held to this much address
# space; one that needs more is `workbook_too_large` rather than the worker killed for
# its memory. About 400,000 rows of 11 columns of an .xlsx fit (300,000 take 290 MiB).
WORKBOOK_MEMORY_LIMIT = 384 << 20
XLS_MEMORY_LIMIT = WORKBOOK_MEMORY_LIMIT  # the former name, when only .xls had a child
# What the child sends of a row, so that the parent's memory stays bounded whatever
# the sheet holds: at most this many cells (one more, non-blank, stands for any
# non-blank cells beyond) ...
MAX_ROW_CELLS = 1000
# ... each cut after this many characters (the parent then answers value_too_long).
MAX_CELL_TEXT = 1_000_000
BEYOND = "\u2026"  # the stand-in for the non-blank cells cut off a row
_OUT_OF_MEMORY_EXIT = 75  # the child's exit code when Python itself runs out of memory


class SheetUnreadable(Exception):
    """The child process reading a workbook stopped before the sheet's end."""


class WorkbookTooLarge(SheetUnreadable):
    """The child process reading a workbook ran out of its WORKBOOK_MEMORY_LIMIT."""


def cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return str(int(value))
        return repr(value)
    if isinstance(value, datetime.datetime):
        return value.date().isoformat() if value.time() == datetime.time() else value.isoformat(sep=" ")
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    return str(value)


class SheetReader:
    """Iterates the first sheet's rows as lists of text; `line_num` is the sheet row number,
    like csv.reader's, so the caller numbers records the same way for both kinds of file."""

    def __init__(self, path, *, xlsx_formats: bool):
        self._workbook = CalamineWorkbook.from_path(str(path))
        sheet = self._workbook.get_sheet_by_index(0)
        # iter_rows starts at the sheet's first row (A1), whatever the used range, but at
        # the used range's first column
        self._rows = sheet.iter_rows()
        self._first_column = sheet.start[1] if sheet.start else 0
        self._styled = _styled_rows(path) if xlsx_formats else None
        self._next_styled = next(self._styled, None) if self._styled else None
        self.line_num = 0

    def __iter__(self):
        return self

    def __next__(self) -> list[str]:
        row = next(self._rows)
        self.line_num += 1
        cells = [cell_text(v) for v in row]
        while self._next_styled is not None and self._next_styled[0] <= self.line_num:
            number, formats = self._next_styled
            if number == self.line_num:
                for column, render in formats.items():
                    at = column - self._first_column
                    value = row[at] if 0 <= at < len(row) else None
                    if isinstance(value, (int, float)) and not isinstance(value, bool):
                        cells[at] = render(value) or cells[at]
            self._next_styled = next(self._styled, None)
        return cells

    def close(self) -> None:
        if self._styled is not None:
            self._styled.close()  # closes the workbook's zip file it streams from
        self._workbook.close()


class ChildSheetReader:
    """SheetReader's rows from a child process (`python -m contact_import.spreadsheet`)
    whose memory is limited, so a damaged or inflating workbook ends as SheetUnreadable
    (WorkbookTooLarge when it ran out of memory) rather than as the worker killed for
    its memory. One JSON list of cell texts per sheet row, cut as `_bounded` says."""

    def __init__(self, path, *, xlsx_formats: bool = False, max_cell_chars: int = MAX_CELL_TEXT):
        self._stderr = tempfile.TemporaryFile()
        args = [sys.executable, "-m", __name__, os.fspath(path), "1" if xlsx_formats else "0",
                str(min(max_cell_chars, MAX_CELL_TEXT))]
        self._proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self._stderr, text=True,
                                      encoding="utf-8")
        self.line_num = 0

    def __iter__(self):
        return self

    def __next__(self) -> list[str]:
        line = self._proc.stdout.readline()
        if not line:
            code = self._proc.wait()
            if code != 0:
                self._stderr.seek(0, os.SEEK_END)
                self._stderr.seek(max(0, self._stderr.tell() - 4096))
                said = self._stderr.read().decode("utf-8", "replace")
                # calamine (Rust) aborts on a failed allocation; Python raises MemoryError;
                # the kernel's OOM killer sends SIGKILL
                if (code in (_OUT_OF_MEMORY_EXIT, -signal.SIGABRT, -signal.SIGKILL)
                        or "memory allocation" in said or "MemoryError" in said):
                    raise WorkbookTooLarge(f"the workbook needs more than {WORKBOOK_MEMORY_LIMIT >> 20} MiB")
                # a traceback's last line names the exception: "python_calamine.ZipError: ..."
                last = said.strip().rpartition("\n")[2].partition(":")[0]
                name = last.rpartition(".")[2] if re.fullmatch(r"[A-Za-z_][\w.]*", last) else ""
                raise SheetUnreadable(name or f"exit code {code}")
            raise StopIteration
        self.line_num += 1
        return json.loads(line)

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.stdout.close()
        self._proc.wait()
        self._stderr.close()


def _bounded(cells: list[str], max_cell_chars: int) -> list[str]:
    """At most MAX_ROW_CELLS + 1 cells of at most max_cell_chars + 1 characters: enough
    for the parent to tell a header of too many columns, a row wider than its header, and
    a value too long, without holding a row of any size."""
    if len(cells) > MAX_ROW_CELLS:
        beyond = any(map(str.strip, cells[MAX_ROW_CELLS:]))
        cells = cells[:MAX_ROW_CELLS] + [BEYOND if beyond else ""]
    if max(map(len, cells), default=0) > max_cell_chars:
        cells = [c[:max_cell_chars + 1] for c in cells]
    return cells


def _serve_rows(path: str, xlsx_formats: bool, max_cell_chars: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (WORKBOOK_MEMORY_LIMIT, WORKBOOK_MEMORY_LIMIT))  # this child's own
    out = open(sys.stdout.fileno(), "w", encoding="utf-8", closefd=False)
    try:
        reader = SheetReader(path, xlsx_formats=xlsx_formats)
        for row in reader:
            out.write(json.dumps(_bounded(row, max_cell_chars), ensure_ascii=False) + "\n")
        out.flush()
    except MemoryError:
        os._exit(_OUT_OF_MEMORY_EXIT)


# ---------------------------------------------------------------- .xlsx number formats

_NS_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"
# Tags of the sheet XML that place a cell: <row r="12" ...> and <c r="B12" s="3" t="n">,
# with or without a namespace prefix. Only attributes are read, never cell contents.
_TAG = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(row|c)(?=[\s/>])([^>]*)>")
_ATTR = re.compile(rb'\b(r|s|t)="([^"]*)"')
_NOT_NUMBER_TYPES = {b"s", b"str", b"inlineStr", b"b", b"e"}
_CHUNK = 1 << 20
# Literal characters Excel shows without quotes in a number format.
_BARE_LITERALS = set(" -()+:$^'{}<>=!&~")
_COLOURS = {"black", "blue", "cyan", "green", "magenta", "red", "white", "yellow"}


def integer_format(code: str) -> Callable[[int | float], str | None] | None:
    """How a format shows a whole number, for formats made only of digit placeholders
    (`0`, `#`, `?`) and literal text, such as `0000000000`, `"0"#########` or
    `0000-000-000`; None for any other format (General, decimals, thousands separators,
    dates, percent, conditions), whose cells keep their plain digits. The renderer
    returns None for a value it does not show as a whole number."""
    section = _first_section(code)
    if section is None:
        return None
    parts: list[str] = []  # placeholders as "0" "#" "?", literals as "'" + text
    i = 0
    while i < len(section):
        ch = section[i]
        if ch == '"':
            end = section.find('"', i + 1)
            if end < 0:
                return None
            parts.append("'" + section[i + 1:end])
            i = end + 1
        elif ch == "\\" and i + 1 < len(section):
            parts.append("'" + section[i + 1])
            i += 2
        elif ch == "[":
            end = section.find("]", i)
            inner = section[i + 1:end].lower() if end > 0 else ""
            # a colour or a locale ([$-404]) changes nothing in the text; a condition or
            # a currency symbol does
            if end < 0 or not (inner in _COLOURS or inner.startswith("color") or inner.startswith("$-")):
                return None
            i = end + 1
        elif ch in "0#?":
            parts.append(ch)
            i += 1
        elif ch in _BARE_LITERALS:
            parts.append("'" + ch)
            i += 1
        else:  # . , % E @ _ * date and time letters, General
            return None
    if not any(p in ("0", "#", "?") for p in parts) or parts in (["0"], ["#"]):
        return None  # nothing to show, or the plain digits

    slots = [k for k, p in enumerate(parts) if p in ("0", "#", "?")]
    empty = {"0": "0", "#": "", "?": " "}

    def render(value: int | float) -> str | None:
        if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
            return None
        number = int(value)
        if number < 0:
            return None  # a negative phone or ID is no phone or ID: keep the plain digits
        digits = str(number) if number else ""
        # Digits fill the placeholders from the right; any left over go to the first one.
        shown = [p[1:] if p[0] == "'" else empty[p] for p in parts]
        for k in reversed(slots):
            if not digits:
                break
            shown[k], digits = digits[-1], digits[:-1]
        if digits:
            shown[slots[0]] = digits + shown[slots[0]]
        return "".join(shown).strip() or "0"

    return render


def _first_section(code: str) -> str | None:
    """The format's first section (positive numbers), or None when it is empty."""
    in_quotes = False
    for i, ch in enumerate(code):
        if ch == '"':
            in_quotes = not in_quotes
        elif ch == ";" and not in_quotes:
            code = code[:i]
            break
    return code or None


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _style_renderers(z: zipfile.ZipFile) -> dict[bytes, Callable]:
    """Cell style index (the `s` attribute, as written) -> how that style shows a whole
    number, for the styles whose number format changes the digits."""
    try:
        root = ElementTree.fromstring(z.read("xl/styles.xml"))
    except KeyError:
        return {}
    # Built-in formats (ids below 164) show a whole number as its digits; a workbook may
    # redefine any id in numFmts.
    codes = {el.get("numFmtId"): el.get("formatCode") or "" for el in root.iter() if _local(el.tag) == "numFmt"}
    renderers = {}
    for xfs in (el for el in root if _local(el.tag) == "cellXfs"):
        for index, xf in enumerate(el for el in xfs if _local(el.tag) == "xf"):
            render = integer_format(codes.get(xf.get("numFmtId", "0"), ""))
            if render is not None:
                renderers[str(index).encode()] = render
    return renderers


def _first_sheet_path(z: zipfile.ZipFile) -> str | None:
    """The part of the workbook's first sheet, as calamine's sheet index 0 is."""
    workbook = ElementTree.fromstring(z.read("xl/workbook.xml"))
    sheet = next((el for el in workbook.iter() if _local(el.tag) == "sheet"), None)
    if sheet is None:
        return None
    rels = ElementTree.fromstring(z.read("xl/_rels/workbook.xml.rels"))
    target = next((el.get("Target") for el in rels if el.get("Id") == sheet.get(_NS_REL)), None)
    if not target:
        return None
    return target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join("xl", target))


def _column(ref: bytes) -> int:
    number = 0
    for letter in ref:
        if not 65 <= letter <= 90:
            break
        number = number * 26 + letter - 64
    return number - 1


def _styled_rows(path) -> Iterator[tuple[int, dict[int, Callable]]]:
    """(sheet row number, {column index: renderer}) for each row of the first sheet that
    has a number cell whose style changes its digits, in row order; nothing at all when
    no style of the workbook does. Streams the sheet's XML, reading tags only."""
    with zipfile.ZipFile(path) as z:
        try:
            renderers = _style_renderers(z)
            part = _first_sheet_path(z) if renderers else None
        except (KeyError, ElementTree.ParseError):
            return  # calamine judges the workbook; without styles its cells keep their digits
        if part is None or part not in z.namelist():
            return
        with z.open(part) as xml:
            row, column, cells, tail = 0, -1, {}, b""
            while True:
                chunk = xml.read(_CHUNK)
                data = tail + chunk
                # keep an unfinished tag for the next chunk
                cut = data.rfind(b"<") if chunk else len(data)
                if cut < 0 or data.find(b">", cut) >= 0:
                    cut = len(data)
                for match in _TAG.finditer(data, 0, cut):
                    attrs = dict(_ATTR.findall(match[2]))
                    if match[1] == b"row":
                        if cells:
                            yield row, cells
                        row = int(attrs[b"r"]) if b"r" in attrs else row + 1
                        column, cells = -1, {}
                        continue
                    column = _column(attrs[b"r"]) if b"r" in attrs else column + 1
                    render = renderers.get(attrs.get(b"s", b"0"))
                    if render is not None and attrs.get(b"t", b"n") not in _NOT_NUMBER_TYPES:
                        cells[column] = render
                tail = data[cut:]
                if not chunk:
                    break
            if cells:
                yield row, cells


if __name__ == "__main__":
    _serve_rows(sys.argv[1], sys.argv[2] == "1", int(sys.argv[3]))
