"""Connections to the CDP database, and the embedded PostgreSQL the CLI and `make demo` use
when none is configured (`context.for_command_line`)."""
from __future__ import annotations

import csv
import io
import warnings
from contextlib import contextmanager
from typing import Iterable, Iterator

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from . import config


def embedded_url() -> str:
    """Start (or reuse) the PostgreSQL server under .data/pg and return its URL.

    pgserver keeps the server running after this process exits, so the next
    command finds it already up and connects in milliseconds.
    """
    pgdata = config.data_dir() / "pg"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, cron)
        warnings.simplefilter("ignore")
        import pgserver  # imported lazily: only needed when no server is configured

        server = pgserver.get_server(pgdata, cleanup_mode=None)
    return server.get_uri()


def connect(url: str) -> psycopg2.extensions.connection:
    return psycopg2.connect(url, application_name="contact-import")


@contextmanager
def transaction(url: str) -> Iterator[psycopg2.extensions.connection]:
    """A connection whose work commits on success and rolls back on any error."""
    conn = connect(url)
    try:
        with conn:
            yield conn
    finally:
        conn.close()


def copy_rows(cur, table: str, rows: Iterable[tuple], columns: Iterable[str] = (), analyze: bool = True) -> None:
    """COPY rows (None as NULL) into `table` (`schema.name` or a temporary table's name),
    into `columns` when given. With `analyze`, give the planner the table's statistics:
    a fresh temporary table has none, and the planner then guesses a handful of rows and
    joins them to the CDP tables with nested loops."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in rows:
        writer.writerow(["\\N" if v is None else v for v in row])
    buffer.seek(0)
    target = sql.Identifier(*table.split("."))
    names = sql.SQL(" ({})").format(sql.SQL(", ").join(map(sql.Identifier, columns))) if columns else sql.SQL("")
    cur.copy_expert(sql.SQL("COPY {}{} FROM STDIN WITH (FORMAT csv, NULL '\\N')").format(target, names)
                    .as_string(cur), buffer)
    if analyze:
        cur.execute(sql.SQL("ANALYZE {}").format(target))
