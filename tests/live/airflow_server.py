"""Start and stop `make airflow` (scripts/airflow_local.py) for the live tests, and talk to it."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg2
import pytest

from contact_import.endpoints import API_URL_PREFIX
from tests.helpers import EXAMPLES, LINE_HEADER, ROOT, csv_bytes, free_port, line_id, upload  # noqa: F401 (re-exported)

SCRIPT = ROOT / "scripts" / "airflow_local.py"
SAMPLE = (EXAMPLES / "line-contacts.csv").resolve()
PASSWORD = "live-test-password"
STARTUP_TIMEOUT = 180  # seconds until /api/v2/version answers
PARSE_TIMEOUT = 120  # until the dag-processor has listed DAG contact_import
RUN_TIMEOUT = 300  # until the triggered run has finished
STOP_TIMEOUT = 60  # after SIGTERM, before SIGKILL
API = API_URL_PREFIX
VIEWER_PASSWORD = "viewer-password"
MAX_UPLOAD_MB = 1  # of the shared Airflow (tests/live/conftest.py)
CHUNK_ROWS = 100
TASKS = ["detect_encoding", "map_columns", "validate", "approval_gate", "approve", "upsert_contacts",
         "bind_teammates", "finalize"]


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


@contextmanager
def running_airflow(tmp: Path, cdp_url: str, extra_env: dict[str, str] | None = None):
    """scripts/airflow_local.py on free ports with its own AIRFLOW_HOME under `tmp`; stopped after."""
    port = free_port()
    home = tmp / "airflow"
    env = dict(os.environ)
    env.update({
        "AIRFLOW_HOME": str(home),
        "CONTACT_IMPORT_DATA_DIR": str(tmp / "data"),
        "CONTACT_IMPORT_STORAGE": str(tmp / "files"),
        "CDP_DATABASE_URL": cdp_url,
        "AIRFLOW_PORT": str(port),
        "AIRFLOW_ADMIN_PASSWORD": PASSWORD,
        # Free ports for the log servers too, so a `make airflow` on this machine does not collide.
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    })
    env.pop("AIRFLOW__API__HOST", None)
    log = tmp / "airflow_local.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, str(SCRIPT)], env=env, cwd=str(ROOT), stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    instance = LocalAirflow(proc, f"http://127.0.0.1:{port}", home, log)
    try:
        yield instance
    finally:
        instance.stop()
        assert not instance.leftovers, f"Airflow processes left behind: {instance.leftovers}"


@contextmanager
def airflow_metadata_database(pg_server: str):
    """A new database on the test server for Airflow's metadata, as a SQLAlchemy URL; dropped after."""
    import uuid

    from psycopg2.extensions import parse_dsn

    name = f"airflow_meta_{uuid.uuid4().hex[:10]}"
    dsn = parse_dsn(pg_server)
    query = "&".join(f"{k}={v}" for k, v in (("host", dsn.get("host")), ("port", dsn.get("port"))) if v)
    login = dsn.get("user", "postgres") + (f":{dsn['password']}" if dsn.get("password") else "")
    admin = psycopg2.connect(pg_server)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql+psycopg2://{login}@/{name}" + (f"?{query}" if query else "")
        finally:
            with admin.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.close()


def _stat(pid: int) -> tuple[int, str, str] | None:
    """(parent pid, start time, state) of a live process, from /proc/PID/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), fields[19], fields[0]


def process_tree(root: int) -> dict[int, tuple[str, str]]:
    """The live descendants of `root`: pid -> (start time, command line as `ps` shows it).

    Unlike processes_using() this sees the API server: its setproctitle() overwrites the memory
    /proc/PID/environ reads, so its AIRFLOW_HOME is gone from there.
    """
    children: dict[int, list[int]] = {}
    starts = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) and stat[2] != "Z":
            children.setdefault(stat[0], []).append(int(entry.name))
            starts[int(entry.name)] = stat[1]
    tree, frontier = {}, [root]
    while frontier:
        for pid in children.get(frontier.pop(), []):
            if pid not in tree:
                try:
                    command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    continue
                tree[pid] = (starts[pid], command.strip())
                frontier.append(pid)
    return tree


def still_running(tree: dict[int, tuple[str, str]]) -> dict[int, str]:
    """The processes of a process_tree() snapshot that live on (same pid and start time, not a zombie)."""
    return {pid: command for pid, (start, command) in tree.items()
            if (stat := _stat(pid)) and stat[1] == start and stat[2] != "Z"}


def client_for(airflow, user: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {airflow.tokens[user]}"} if user else {}
    return httpx.Client(base_url=airflow.base_url, timeout=60, headers=headers)


def wait_for(airflow, client, import_id, statuses, timeout=RUN_TIMEOUT):
    def check():
        record = client.get(f"{API}/imports/{import_id}").json()
        return record if record["status"] in statuses else None
    return wait_until(f"import {import_id} in {statuses}", check, timeout, airflow, every=0.5)


def contacts_in(airflow, workspace: str) -> int:
    with psycopg2.connect(airflow.cdp_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM cdp.contacts c JOIN cdp.workspaces w ON w.id = c.workspace_id"
                    " WHERE w.slug = %s", (workspace,))
        count = cur.fetchone()[0]
    conn.close()
    return count


# Airflow 3.3.2 loses an answer to the approval step given while the scheduler is still
# handling the executor's event for the parked try: it counts the resumed task as an
# unexpected state and retries it, and the retry asks again. People answer seconds later;
# the tests wait as long and, should Airflow ask again anyway (seen under heavy load),
# answer again as a person would.
HUMAN_PAUSE_SECONDS = 5
ANSWER_ATTEMPTS = 3


def answer_approval_step(airflow: LocalAirflow, api: httpx.Client, run_id: str, answer) -> dict:
    """Call `answer()` once the run's approval step waits for input, again if Airflow asks
    again; returns the step's task instance once it has ended."""
    ti = f"/api/v2/dags/contact_import/dagRuns/{run_id}/taskInstances/approve"

    def parked():
        step = api.get(ti).json()
        return step if step.get("state") == "awaiting_input" else None

    def ended_or_asked_again(try_number: int):
        step = api.get(ti).json()
        if step.get("state") in ("success", "skipped", "failed"):
            return step
        if step.get("state") == "awaiting_input" and step["try_number"] > try_number:
            return step
        return None

    for _ in range(ANSWER_ATTEMPTS):
        waiting = wait_until("the approval step waiting for input", parked, RUN_TIMEOUT, airflow)
        time.sleep(HUMAN_PAUSE_SECONDS)
        answer()
        step = wait_until("the approval step answered", lambda: ended_or_asked_again(waiting["try_number"]),
                          RUN_TIMEOUT, airflow)
        if step["state"] != "awaiting_input":
            return step
    pytest.fail(f"Airflow asked {ANSWER_ATTEMPTS} times for the approval of run {run_id}")


def run_sample_import(airflow: LocalAirflow, client: httpx.Client, cdp_url: str) -> tuple[str, list[dict], dict]:
    """Trigger contact_import on the sample file through Airflow's REST API, wait for the run,
    check every task ran (approve skipped) and the import completed with the sample's 6 rows;
    returns the run id, the task instances and the import's result."""
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
    assert state == "success" and states == {**dict.fromkeys(TASKS, "success"), "approve": "skipped"}, \
        f"run {state}, tasks {states}\n{task_logs(airflow, run_id)}\n{airflow.output()}"

    with psycopg2.connect(cdp_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT status, total_rows, processed_rows, dag_run_id, result FROM cdp.imports")
        imports = cur.fetchall()
    conn.close()
    assert len(imports) == 1, imports
    status, total_rows, processed_rows, dag_run_id, result = imports[0]
    assert (status, total_rows, processed_rows, dag_run_id) == ("completed", 6, 6, run_id)
    return run_id, tis, result
