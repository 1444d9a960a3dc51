"""`make bench`'s small-file figure: a 100-row file through the upload API of `make airflow`
(airflow standalone on a free port, its own AIRFLOW_HOME), from the upload until the
import is completed, several times; the median is the figure."""
from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from contact_import.endpoints import API_URL_PREFIX, IMPORT_DAG_ID

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "bench-password"
HEADER = "LINE User ID,Name,Email,Tags"
FINISHED = ("completed", "validation_failed", "cancelled", "failed")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait(what: str, check, timeout: float, proc: subprocess.Popen, log: Path, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"airflow_local.py exited while waiting for {what}; see {log}")
        try:
            value = check()
        except httpx.TransportError:
            value = None
        if value:
            return value
        time.sleep(every)
    raise SystemExit(f"no {what} after {timeout:.0f}s; see {log}")


def small_file_seconds(cdp_url: str, runs: int = 5, rows: int = 100) -> list[float]:
    """Seconds from upload to completed for `runs` files of `rows` new contacts (workspace demo)."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-api-"))
    port = free_port()
    env = dict(os.environ, AIRFLOW_HOME=str(tmp / "airflow"), CONTACT_IMPORT_DATA_DIR=str(tmp / "data"),
               CONTACT_IMPORT_STORAGE=str(tmp / "files"), CDP_DATABASE_URL=cdp_url, AIRFLOW_PORT=str(port),
               AIRFLOW_ADMIN_PASSWORD=PASSWORD, AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
               AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(free_port()))
    log = tmp / "airflow_local.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "airflow_local.py")], env=env,
                                cwd=str(ROOT), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait("the API server", lambda: httpx.get(f"{base}/api/v2/version", timeout=5).status_code == 200,
             240, proc, log)
        token = httpx.post(f"{base}/auth/token", json={"username": "admin", "password": PASSWORD},
                           timeout=30).json()["access_token"]
        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60)

        def dag_ready():
            answer = client.get(f"/api/v2/dags/{IMPORT_DAG_ID}")
            return answer.status_code == 200 and not answer.json()["is_paused"]

        wait(f"DAG {IMPORT_DAG_ID}, parsed and unpaused", dag_ready, 180, proc, log)
        seconds = []
        for run in range(runs):
            lines = [HEADER] + [f"U{run:08x}{n:024x},Bench {n},bench{run}-{n}@example.com,VIP"
                                for n in range(rows)]
            started = time.monotonic()
            answer = client.post(f"{API_URL_PREFIX}/imports", data={"workspace": "demo", "channel": "line"},
                                 files={"file": ("small.csv", ("\n".join(lines) + "\n").encode())})
            answer.raise_for_status()
            import_id = answer.json()["id"]

            def finished():
                record = client.get(f"{API_URL_PREFIX}/imports/{import_id}").json()
                return record if record["status"] in FINISHED else None

            record = wait(f"import {import_id} to finish", finished, 600, proc, log, every=0.2)
            if record["status"] != "completed":
                raise SystemExit(f"small-file import {import_id} ended {record['status']}: {record['message']}")
            seconds.append(time.monotonic() - started)
        return seconds
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(90)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)


def report(cdp_url: str) -> float:
    seconds = small_file_seconds(cdp_url)
    median = statistics.median(seconds)
    print(f"\nsmall file (100 rows) through the upload API on airflow standalone, upload -> completed:"
          f" median {median:.1f}s of {len(seconds)} ({', '.join(f'{s:.1f}' for s in seconds)})")
    return median
