"""`make airflow-celery`'s checks and settings: Airflow's metadata database in PostgreSQL
(created when missing), a Redis broker that answers, the result backend; each unusable
one stops the script with one line (ConfigError)."""
from __future__ import annotations

import os
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

from airflow_local_processes import say

DEFAULT_METADATA_URL = "postgresql+psycopg2://postgres@localhost:5432/airflow_celery"
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"


class ConfigError(Exception):
    pass


def redact(url: str) -> str:
    """The URL without its password, for messages and the banner."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.rsplit("@", 1)
        return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{netloc[-1]}"))
    except ValueError:
        return "<unparsable URL>"


@contextmanager
def pg_connection(url):
    """One autocommit connection from a SQLAlchemy URL (either psycopg driver), no pool kept."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT",
                           connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def ensure_metadata_database(url: str) -> None:
    """Airflow's metadata database must be PostgreSQL and reachable; created when the server lacks it."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, DBAPIError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN is not a database URL: {redact(url)}") from None
    if parsed.get_backend_name() != "postgresql":
        raise ConfigError("CeleryExecutor needs Airflow's metadata in PostgreSQL, which every component and worker"
                          " shares (Airflow refuses SQLite with it): set AIRFLOW__DATABASE__SQL_ALCHEMY_CONN to e.g."
                          f" {DEFAULT_METADATA_URL}, not {redact(url)}")
    name = parsed.database or ""
    try:
        with pg_connection(parsed):
            return
    except DBAPIError as exc:
        if f'database "{name}" does not exist' not in str(exc) or not name or '"' in name:
            raise ConfigError(f"cannot connect to Airflow's metadata database {redact(url)}:"
                              f" {str(exc.orig).strip().splitlines()[0]}; start PostgreSQL or set"
                              " AIRFLOW__DATABASE__SQL_ALCHEMY_CONN") from None
    try:
        with pg_connection(parsed.set(database="postgres")) as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except DBAPIError as exc:
        raise ConfigError(f"cannot create Airflow's metadata database {name!r} on {redact(url)}:"
                          f" {str(exc.orig).strip().splitlines()[0]}") from None
    say(f"created Airflow's metadata database {name!r}")


def check_broker(url: str) -> None:
    """A Redis broker must answer PING now: otherwise every component would retry it for ever."""
    if urlsplit(url).scheme not in ("redis", "rediss"):
        say(f"broker {redact(url)} is not Redis; not checked")
        return
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
        try:
            client.ping()
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError) as exc:
        raise ConfigError(f"the Celery broker {redact(url)} does not answer ({exc}); start Redis or set"
                          " AIRFLOW__CELERY__BROKER_URL") from None


def celery_settings() -> dict[str, str]:
    """The metadata database, broker and result backend of celery mode, checked (ConfigError if not usable)."""
    broker = os.environ.get("AIRFLOW__CELERY__BROKER_URL") or DEFAULT_BROKER_URL
    check_broker(broker)  # first: no database is created for a set-up that cannot start
    metadata = os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN") or DEFAULT_METADATA_URL
    ensure_metadata_database(metadata)
    backend = (os.environ.get("AIRFLOW__CELERY__RESULT_BACKEND")
               or "db+" + metadata.replace("postgresql://", "postgresql+psycopg2://", 1))
    return {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata,
        "AIRFLOW__CELERY__BROKER_URL": broker,
        "AIRFLOW__CELERY__RESULT_BACKEND": backend,
    }


def celery_defaults(env: dict[str, str]) -> None:
    """Defaults of celery mode that any value you set wins over."""
    defaults = {
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": env.get("AIRFLOW__CORE__PARALLELISM") or "4",
        # Said explicitly (Airflow's default), else every component warns about it at start.
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "86400",
    }
    for key, value in defaults.items():
        env[key] = os.environ.get(key) or value
