"""What every stage works against: the CDP database and the storage of import files.

Each entry point builds one Context and passes it down (the library holds no global
switch): the DAGs and the plugin from Airflow's connection `cdp_default` and Airflow's
object storage, the CLI from `--db` / CDP_DATABASE_URL or the embedded server.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from psycopg2.extensions import make_dsn, parse_dsn
from upath import UPath

from . import config
from .storage import Storage

CONNECTION_ID = "cdp_default"  # the Airflow connection of the CDP database


class NoDatabase(Exception):
    """No CDP database is configured where one must be (an Airflow task, the API server)."""


@dataclass(frozen=True)
class Context:
    cdp_url: str
    storage: Storage


def for_command_line(url: str | None = None) -> Context:
    """The CLI's context: `url`, else CDP_DATABASE_URL, else the embedded PostgreSQL."""
    from . import db

    url = url or os.environ.get("CDP_DATABASE_URL") or db.embedded_url()
    return Context(url, Storage(config.storage_base()))


def from_connection(connection: Any, path_class: type = UPath) -> Context:
    """The context of an Airflow process, from the `cdp_default` connection's plain values
    (host, login, password, schema, port, extra_dejson) and a storage path class."""
    if connection is None:
        raise NoDatabase(no_database_message())
    return Context(url_of_connection(connection), Storage(config.storage_base(), path_class))


def no_database_message() -> str:
    return (f"no CDP database: define the Airflow connection {CONNECTION_ID!r}"
            f" (AIRFLOW_CONN_{CONNECTION_ID.upper()}, or Admin > Connections)")


def url_of_connection(connection: Any) -> str:
    """A libpq DSN from an Airflow connection's fields (a socket folder as host works too)."""
    fields = {"host": connection.host, "user": connection.login, "password": connection.password,
              "dbname": connection.schema, "port": connection.port}
    extra = {k: str(v) for k, v in (connection.extra_dejson or {}).items()}
    return make_dsn(**{k: v for k, v in fields.items() if v not in (None, "")}, **extra)


def connection_json(url: str) -> str:
    """The Airflow connection `cdp_default` for a DSN, in Airflow's JSON form: a socket
    folder or a key=value DSN does not survive the URI form."""
    dsn = parse_dsn(url)
    known = {"host": dsn.pop("host", None), "login": dsn.pop("user", None), "password": dsn.pop("password", None),
             "schema": dsn.pop("dbname", None), "port": int(dsn.pop("port")) if dsn.get("port") else None}
    return json.dumps({"conn_type": "postgres", **{k: v for k, v in known.items() if v is not None},
                       **({"extra": dsn} if dsn else {})})
