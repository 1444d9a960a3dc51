"""The files of one import's folder in storage, by name.

upload.<ext>       the file as received, under a server-chosen name
source.utf8.csv    its UTF-8 copy with a __row__ column (detect_encoding)
columns.json       the column mapping (map_columns)
normalised.csv     the validated rows (normalised.py owns its layout)
unchanged.csv      the rows left out as unchanged: contact id, fingerprint (unchanged.py)
errors.csv         the error report of a rejected file, errors.zh-TW.csv beside it
data_docs.html     GX's page of a failed validation
warnings.csv       the rows behind the warnings' counts
"""
from __future__ import annotations

from pathlib import Path, PurePath
from typing import TypeVar

UTF8 = "source.utf8.csv"
COLUMNS = "columns.json"
NORMALISED = "normalised.csv"
UNCHANGED = "unchanged.csv"
ERRORS = "errors.csv"
WARNINGS = "warnings.csv"
DATA_DOCS = "data_docs.html"

P = TypeVar("P", bound=PurePath)


def upload_name(file_name: str) -> str:
    """The stored upload's name: `upload` plus the original's last extension, nothing else of it."""
    return "upload" + "".join(Path(file_name).suffixes[-1:]).lower()[:8]


def report_path(report: P, lang: str) -> P:
    """errors.csv is English; errors.zh-TW.csv beside it (paths local or in storage)."""
    return report if lang == "en" else report.with_name(f"{report.stem}.{lang}{report.suffix}")


# what a rejection leaves to read (the stages put these back into storage)
REJECTION = (ERRORS, report_path(Path(ERRORS), "zh-TW").name, DATA_DOCS)
