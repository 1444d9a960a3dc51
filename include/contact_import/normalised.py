"""The normalised rows: what validation hands on to the upsert and the bindings.

One CSV per import, `normalised.csv` in the import's folder, written once by validation
(chunk by chunk, then folded where rows share a profile) and read by the preview, the
upsert and the bindings. This module is the only one that knows its layout:

- one record per data row of the file, in file order; `row` is its line in the file;
- cells normalised (`normalisation.py`); an empty cell is empty;
- `tags` is a JSON list; `[]` is an empty Tags cell, which clears tags in overwrite
  mode, and an empty `tags` means the file has no Tags value for the row;
- `attributes` is a JSON object of the row's custom attributes;
- `fingerprint` is the mapped row's fingerprint (unchanged.py), which the upsert stores
  with the contact.

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
           "attributes", "binding_teammate", "store_code", "fingerprint")
# the columns' types when the file is staged in PostgreSQL
SQL_TYPES = {"row": "int", "birthday": "date", "tags": "jsonb", "attributes": "jsonb", "fingerprint": "uuid"}


def write_header(out: IO[str]) -> None:
    out.write(",".join(COLUMNS) + "\n")


def write_chunk(frame: pd.DataFrame, out: IO[str]) -> None:
    """Append a chunk of normalised rows (COLUMNS; tags as lists) to a file begun by write_header."""
    tags = [json.dumps(t, ensure_ascii=False) if t is not None and t != "" else ("[]" if t == "" else None)
            for t in frame["tags"]]
    frame.assign(tags=tags)[list(COLUMNS)].to_csv(out, index=False, header=False)


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


FIRST_LINE = 2  # of a data row: the line after a one-line header


def chunk_of(line, chunk_rows: int):
    """The upsert's chunk of a row (or of a Series of rows) by its line in the file."""
    return (line - FIRST_LINE) // chunk_rows


def read_chunks(path: Path, chunk_rows: int) -> Iterator[tuple[int, pd.DataFrame]]:
    """The rows in the upsert's chunks: chunk k holds the rows on lines FIRST_LINE + k *
    chunk_rows onwards, up to chunk_rows of them. By line rather than by count, so the
    rows left out as unchanged (unchanged.py) move no other row into another chunk: the
    rows a chunk plans together, and so the outcome, are those of the full path."""
    pending, number = None, None
    for frame in read(path, chunk_rows):
        if frame.empty:
            continue
        if pending is not None:
            frame = pd.concat([pending, frame])
        numbers = chunk_of(frame["row"], chunk_rows)
        number = int(numbers.iloc[-1])
        for done, rows in frame[numbers < number].groupby(numbers[numbers < number], sort=True):
            yield int(done), rows
        pending = frame[numbers == number]
    if pending is not None:
        yield number, pending


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
