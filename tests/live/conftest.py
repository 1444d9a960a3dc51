"""One `airflow standalone` (PostgreSQL metadata, users admin and viewer) shared by the live
API and browser tests: starting one takes a minute."""
from __future__ import annotations

import json
import uuid

import httpx
import psycopg2
import pytest

from contact_import import db, workspaces
from tests.helpers import EXAMPLES
from tests.live.airflow_server import CHUNK_ROWS, MAX_UPLOAD_MB, PARSE_TIMEOUT, PASSWORD, STARTUP_TIMEOUT, \
    VIEWER_PASSWORD, client_for, running_airflow, wait_until


@pytest.fixture(scope="package")
def airflow_metadata_url(pg_server):
    """Airflow's own metadata in PostgreSQL, as in production: SQLite's single writer made
    Airflow answer 500 ("database is locked") under the live tests' concurrent runs."""
    from psycopg2.extensions import parse_dsn

    name = f"airflow_meta_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(pg_server)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    dsn = parse_dsn(pg_server)
    query = "&".join(f"{k}={v}" for k, v in (("host", dsn.get("host")), ("port", dsn.get("port"))) if v)
    login = dsn.get("user", "postgres") + (f":{dsn['password']}" if dsn.get("password") else "")
    yield f"postgresql+psycopg2://{login}@/{name}" + (f"?{query}" if query else "")
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture(scope="package")
def airflow(tmp_path_factory, package_cdp_url, airflow_metadata_url):
    tmp = tmp_path_factory.mktemp("live_airflow")
    with db.transaction(package_cdp_url) as conn:
        workspaces.apply(conn, workspaces.load_file(EXAMPLES / "demo-workspace.yaml"))
        spec = workspaces.load_file(EXAMPLES / "demo-workspace.yaml")
        spec["workspace"], spec["name"] = "other", "Other"
        workspaces.apply(conn, spec)
    home = tmp / "airflow"
    home.mkdir()
    (home / "simple_auth_manager_passwords.json.generated").write_text(json.dumps({"viewer": VIEWER_PASSWORD}))
    env = {"AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
           "CONTACT_IMPORT_MAX_UPLOAD_MB": str(MAX_UPLOAD_MB), "CONTACT_IMPORT_CHUNK_ROWS": str(CHUNK_ROWS),
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_metadata_url}
    with running_airflow(tmp, package_cdp_url, env) as instance:
        client = httpx.Client(base_url=instance.base_url, timeout=60)
        wait_until("answer from /api/v2/version", lambda: client.get("/api/v2/version").status_code == 200,
                   STARTUP_TIMEOUT, instance)
        instance.cdp_url = package_cdp_url
        instance.tokens = {user: client.post("/auth/token", json={"username": user, "password": password})
                           .json()["access_token"] for user, password in (("admin", PASSWORD),
                                                                          ("viewer", VIEWER_PASSWORD))}
        admin = client_for(instance, "admin")
        wait_until("DAG contact_import", lambda: admin.get("/api/v2/dags/contact_import").status_code == 200,
                   PARSE_TIMEOUT, instance)
        yield instance


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so a fixture can tell that its test failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
