"""The error and warning reports of an import: CSV files a person opens in a spreadsheet.

Every cell that came from the file (or repeats it in a message) is neutralised, so a
spreadsheet never runs a cell of the file as a formula.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

from .errors import ERROR, Issue

REPORT_COLUMNS = ("row", "column", "value", "code", "message")
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value) -> str:
    """Spreadsheet formula injection: a cell starting with = + - @ is shown as text."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def write_report(issues: list[Issue], path: Path, lang: str = "en", limit: int | None = None) -> None:
    """A report CSV (errors, or warnings): row,column,value,code,message, sorted by row."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ordered = sorted(issues, key=lambda i: (i.row or 0, i.column, i.code))
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(REPORT_COLUMNS)
        for issue in ordered[:limit]:
            writer.writerow([issue.row or "", neutralise(issue.column), neutralise(issue.value),
                             issue.code, neutralise(issue.message(lang))])
    os.replace(tmp, path)


def count_by_code(issues: list[Issue], severity: str = ERROR) -> dict[str, int]:
    counts: dict[str, int] = {}
    for issue in issues:
        if issue.severity == severity:
            counts[issue.code] = counts.get(issue.code, 0) + 1
    return dict(sorted(counts.items()))
