"""Test harness: a real PostgreSQL for every test, each test on its own database.

CDP_TEST_DATABASE_URL (a server URL; any database on it) makes the tests use that
server; otherwise one is started under a temporary folder with the pgserver wheel.
Airflow and the project's files get a throwaway home per session.
"""
from __future__ import annotations

import logging
import os
import tempfile
import uuid
from pathlib import Path

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="contact-import-tests-"))
# Set before anything imports Airflow or the library reads its settings.
os.environ["AIRFLOW_HOME"] = str(_SESSION_DIR / "airflow")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(Path(__file__).resolve().parents[1] / "dags")
os.environ["CONTACT_IMPORT_DATA_DIR"] = str(_SESSION_DIR / "data")
os.environ["CONTACT_IMPORT_STORAGE"] = str(_SESSION_DIR / "files")
os.environ["GX_ANALYTICS_ENABLED"] = "False"
os.environ.pop("CDP_DATABASE_URL", None)
os.environ.pop("AIRFLOW_API_URL", None)

import psycopg2  # noqa: E402
import pytest  # noqa: E402
from psycopg2.extensions import make_dsn, parse_dsn  # noqa: E402

from contact_import import db, migrate, workspaces  # noqa: E402
from tests.helpers import EXAMPLES  # noqa: E402



def _admin(dsn: str):
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    return conn


@pytest.fixture(scope="session")
def pg_server() -> str:
    """DSN of a database on the test server (for CREATE DATABASE)."""
    url = os.environ.get("CDP_TEST_DATABASE_URL")
    if url:
        yield url
        return
    import pgserver

    # pgserver logs its shutdown from an atexit hook, after pytest has closed its streams.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    server = pgserver.get_server(_SESSION_DIR / "pg", cleanup_mode="stop")
    yield server.get_uri()
    server.cleanup()  # now, while pytest's log streams are still open


@pytest.fixture(scope="session")
def template_db(pg_server) -> str:
    """A database migrated once; each test's database is a copy of it."""
    name = f"cdp_template_{uuid.uuid4().hex[:8]}"
    conn = _admin(pg_server)
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    migrate.upgrade(make_dsn(pg_server, dbname=name))
    yield name
    conn = _admin(pg_server)
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


@pytest.fixture
def empty_db(pg_server) -> str:
    """A new, empty database (no cdp schema)."""
    yield from _database(pg_server, None)


@pytest.fixture
def cdp_url(pg_server, template_db) -> str:
    """A migrated database of this test's own."""
    yield from _database(pg_server, template_db)


def _database(pg_server: str, template: str | None):
    name = f"cdp_test_{uuid.uuid4().hex[:12]}"
    admin = _admin(pg_server)
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    dsn = make_dsn(pg_server, dbname=name)
    assert parse_dsn(dsn)["dbname"] == name
    yield dsn
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture(scope="package")
def package_cdp_url(pg_server, template_db) -> str:
    """A migrated database shared by one test package (the live tests share one Airflow)."""
    yield from _database(pg_server, template_db)


@pytest.fixture
def second_cdp_url(pg_server, template_db) -> str:
    """Another migrated database, for comparing with a clean run."""
    yield from _database(pg_server, template_db)


@pytest.fixture
def demo_workspace(cdp_url):
    with db.transaction(cdp_url) as conn:
        return workspaces.apply(conn, workspaces.load_file(EXAMPLES / "demo-workspace.yaml"))
