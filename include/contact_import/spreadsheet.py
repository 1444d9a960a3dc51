"""Excel workbooks (.xlsx, first sheet) read with python-calamine into the same UTF-8 CSV
that encoding.to_utf8 writes for text files.

Cells come typed: a phone typed as a number is a float, so it is written as its exact
integer digits (never 8.86911E+11); dates are written as YYYY-MM-DD.
"""
from __future__ import annotations

import datetime
import math

from python_calamine import CalamineWorkbook


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

    def __init__(self, path):
        self._workbook = CalamineWorkbook.from_path(str(path))
        # iter_rows starts at the sheet's first row (A1), whatever the used range
        self._rows = self._workbook.get_sheet_by_index(0).iter_rows()
        self.line_num = 0

    def __iter__(self):
        return self

    def __next__(self) -> list[str]:
        row = next(self._rows)
        self.line_num += 1
        return [cell_text(v) for v in row]

    def close(self) -> None:
        self._workbook.close()
