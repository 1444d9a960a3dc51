"""Connections to the CDP database, and the embedded PostgreSQL used when none is configured."""
from __future__ import annotations

import os
import warnings
from contextlib import contextmanager
from typing import Iterator

import psycopg2
import psycopg2.extensions

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


def resolve_url(url: str | None = None) -> str:
    return url or os.environ.get("CDP_DATABASE_URL") or embedded_url()


def connect(url: str | None = None) -> psycopg2.extensions.connection:
    return psycopg2.connect(resolve_url(url), application_name="contact-import")


@contextmanager
def transaction(url: str | None = None) -> Iterator[psycopg2.extensions.connection]:
    """A connection whose work commits on success and rolls back on any error."""
    conn = connect(url)
    try:
        with conn:
            yield conn
    finally:
        conn.close()
