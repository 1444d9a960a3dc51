"""`make airflow` for real: scripts/airflow_local.py starts `airflow standalone`, and an import
triggered through Airflow's REST API runs the DAG `contact_import` to success (SPEC sections 6, 7).

Slow (about a minute): four Airflow components start, and every task is a fresh process.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg2
import pytest

from tests.helpers import EXAMPLES, ROOT

pytestmark = pytest.mark.live

SCRIPT = ROOT / "scripts" / "airflow_local.py"
SAMPLE = (EXAMPLES / "line-contacts.csv").resolve()
PASSWORD = "live-test-password"
STARTUP_TIMEOUT = 180  # seconds until /api/v2/version answers
PARSE_TIMEOUT = 120  # until the dag-processor has listed DAG contact_import
RUN_TIMEOUT = 300  # until the triggered run has finished
STOP_TIMEOUT = 60  # after SIGTERM, before SIGKILL
TASKS = ["detect_encoding", "map_columns", "validate", "upsert_contacts", "bind_teammates", "finalize"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def processes_using(home: Path) -> list[int]:
    """Pids of live processes whose environment names this AIRFLOW_HOME: the ones this test started."""
    marker = f"AIRFLOW_HOME={home.resolve()}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    pids.append(int(entry.name))
        except OSError:  # gone, or not ours to read
            continue
    return pids


@dataclass
class LocalAirflow:
    proc: subprocess.Popen
    base_url: str
    home: Path
    log: Path
    leftovers: list[int] = field(default_factory=list)

    def output(self, lines: int = 80) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> int | None:
        """SIGTERM to the script's process group, SIGKILL after STOP_TIMEOUT; then no process may be left."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(10)
        deadline = time.monotonic() + 15  # standalone's own group is swept by the script; allow for it
        while (left := processes_using(self.home)) and time.monotonic() < deadline:
            time.sleep(0.5)
        for pid in left:  # only processes carrying this test's own AIRFLOW_HOME
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.leftovers = left
        return self.proc.returncode


@pytest.fixture
def local_airflow(tmp_path, cdp_url):
    port = free_port()
    home = tmp_path / "airflow"
    env = dict(os.environ)
    env.update({
        "AIRFLOW_HOME": str(home),
        "CONTACT_IMPORT_DATA_DIR": str(tmp_path / "data"),
        "CONTACT_IMPORT_STORAGE": str(tmp_path / "files"),
        "CDP_DATABASE_URL": cdp_url,
        "AIRFLOW_PORT": str(port),
        "AIRFLOW_ADMIN_PASSWORD": PASSWORD,
        # Free ports for the log servers too, so a `make airflow` on this machine does not collide.
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "PYTHONUNBUFFERED": "1",
    })
    env.pop("AIRFLOW__API__HOST", None)
    log = tmp_path / "airflow_local.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, str(SCRIPT)], env=env, cwd=str(ROOT), stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    instance = LocalAirflow(proc, f"http://127.0.0.1:{port}", home, log)
    try:
        yield instance
    finally:
        instance.stop()
        assert not instance.leftovers, f"Airflow processes left behind: {instance.leftovers}"


def wait_until(what: str, check, timeout: float, airflow: LocalAirflow, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if airflow.proc.poll() is not None:
            pytest.fail(f"scripts/airflow_local.py exited with {airflow.proc.returncode} while waiting for"
                        f" {what}:\n{airflow.output()}")
        try:
            value = check()
        except httpx.TransportError:
            value = None
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"no {what} after {timeout:.0f}s:\n{airflow.output()}")


def task_logs(airflow: LocalAirflow, run_id: str) -> str:
    logs = sorted((airflow.home / "logs" / "dag_id=contact_import").glob(f"run_id={run_id}/task_id=*/attempt=*.log"))
    return "\n".join(f"== {p.parent.name}/{p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-15:])
                     for p in logs)


def test_make_airflow_runs_an_import_triggered_through_the_api(local_airflow, cdp_url):
    airflow = local_airflow
    client = httpx.Client(base_url=airflow.base_url, timeout=30)

    version = wait_until("answer from /api/v2/version",
                         lambda: (r := client.get("/api/v2/version")).status_code == 200 and r.json(),
                         STARTUP_TIMEOUT, airflow)
    assert version["version"].startswith("3.")

    token = client.post("/auth/token", json={"username": "admin", "password": PASSWORD})
    assert token.status_code in (200, 201), token.text
    client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
    assert client.post("/auth/token", json={"username": "admin", "password": "wrong"}).status_code == 401

    dag = wait_until("DAG contact_import",
                     lambda: (r := client.get("/api/v2/dags/contact_import")).status_code == 200 and r.json(),
                     PARSE_TIMEOUT, airflow)
    assert dag["is_paused"] is False  # the script starts DAGs unpaused

    params = client.get("/api/v2/dags/contact_import/details").json()["params"]
    assert {"line", "whatsapp"} <= set(params["channel"]["schema"]["enum"])
    assert set(params["tag_mode"]["schema"]["enum"]) == {"append", "overwrite"}
    assert {"workspace", "file", "mapping", "require_approval"} <= set(params)

    conf = {"workspace": "demo", "channel": "line", "tag_mode": "append", "file": str(SAMPLE)}
    created = client.post("/api/v2/dags/contact_import/dagRuns", json={"logical_date": None, "conf": conf})
    assert created.status_code == 200, created.text
    run_id = created.json()["dag_run_id"]

    def finished():
        state = client.get(f"/api/v2/dags/contact_import/dagRuns/{run_id}").json()["state"]
        return state if state in ("success", "failed") else None

    state = wait_until(f"end of run {run_id}", finished, RUN_TIMEOUT, airflow, every=2)
    tis = client.get(f"/api/v2/dags/contact_import/dagRuns/{run_id}/taskInstances").json()["task_instances"]
    states = {ti["task_id"]: ti["state"] for ti in tis}
    assert state == "success" and states == dict.fromkeys(TASKS, "success"), \
        f"run {state}, tasks {states}\n{task_logs(airflow, run_id)}"

    with psycopg2.connect(cdp_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT status, total_rows, processed_rows, dag_run_id, result FROM cdp.imports")
        imports = cur.fetchall()
    conn.close()
    assert len(imports) == 1, imports
    status, total_rows, processed_rows, dag_run_id, result = imports[0]
    assert (status, total_rows, processed_rows, dag_run_id) == ("completed", 6, 6, run_id)
    assert result["created"] == 6

    # A clean stop: SIGTERM to the script stops every Airflow component in time.
    assert len(processes_using(airflow.home)) >= 5  # the script, standalone, its four components: the scan sees them
    assert airflow.stop() == 0, airflow.output()
    assert not airflow.leftovers, f"Airflow processes left behind: {airflow.leftovers}"
