"""The normalised rows: what validation hands on to the upsert and the bindings.

One CSV per import, `normalised.csv` in the import's folder, written once by validation
(chunk by chunk, then folded where rows share a profile) and read by the preview, the
upsert and the bindings. This module is the only one that knows its layout:

- one record per data row of the file, in file order; `row` is its line in the file;
- cells normalised (`normalisation.py`); an empty cell is empty;
- `tags` is a JSON list; `[]` is an empty Tags cell, which clears tags in overwrite
  mode, and an empty `tags` means the file has no Tags value for the row;
- `attributes` is a JSON object of the row's custom attributes.

docs/design.md says why it is a CSV and not Parquet or a table kept in PostgreSQL.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Iterable, Iterator

import pandas as pd
from psycopg2 import sql

from . import import_folder

NAME = import_folder.NORMALISED
COLUMNS = ("row", "user_id", "name", "email", "phone", "gender", "birthday", "tags",
           "attributes", "binding_teammate", "store_code")
# the columns' types when the file is staged in PostgreSQL
SQL_TYPES = {"row": "int", "birthday": "date", "tags": "jsonb", "attributes": "jsonb"}


def write_chunk(frame: pd.DataFrame, out: IO[str], first: bool) -> None:
    """Append a chunk of normalised rows (COLUMNS; tags as lists) to an open file."""
    tags = [json.dumps(t, ensure_ascii=False) if t is not None and t != "" else ("[]" if t == "" else None)
            for t in frame["tags"]]
    frame.assign(tags=tags)[list(COLUMNS)].to_csv(out, index=False, header=first)


def read(path: Path, chunk_rows: int, columns: Iterable[str] | None = None) -> Iterator[pd.DataFrame]:
    """The rows (or only `columns` of them), chunk by chunk: empty cells as None, tags
    and attributes as JSON text, `row` as int."""
    reader = pd.read_csv(path, dtype=str, keep_default_na=False, chunksize=chunk_rows, encoding="utf-8",
                         usecols=list(columns) if columns else None)
    for chunk in reader:
        chunk = chunk.astype(object).where(chunk != "", None)
        if "row" in chunk:
            chunk["row"] = chunk["row"].astype(int)
        yield chunk


def stage(cur, path: Path, table: str) -> None:
    """COPY the rows into a new temporary `table`, `pos` = the record's place (from 1)."""
    columns = sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(SQL_TYPES.get(c, "text")))
                                 for c in COLUMNS)
    cur.execute(sql.SQL("DROP TABLE IF EXISTS {table}; CREATE TEMP TABLE {table}"
                        " (pos int GENERATED ALWAYS AS IDENTITY, {columns})").format(
        table=sql.Identifier(table), columns=columns))
    with open(path, encoding="utf-8", newline="") as file:
        cur.copy_expert(sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv, HEADER true)").format(
            sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, COLUMNS))).as_string(cur), file)
    cur.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))
