"""Calls to Airflow's own REST API (/api/v2) with the caller's token, so Airflow checks
each one as if the caller made it. Blocking (httpx): the routes call these from FastAPI's
thread pool, never on the event loop.

Airflow is reached at AIRFLOW_API_URL when set (an API server behind a proxy), else at
the address the request came to.
"""
from __future__ import annotations

import os
import time
from typing import Any
from urllib.parse import quote

import httpx
from fastapi import HTTPException, Request, status

from contact_import.endpoints import IMPORT_DAG_ID

from .auth import Caller

TIMEOUT = 30  # seconds
HINT_TIMEOUT = 5  # seconds: a read that only adds a hint must not hold up the answer
PASSED_ON = (403, 404, 409)  # Airflow's answers the caller gets as they are; other errors are 502


def base_url(request: Request) -> str:
    return (os.environ.get("AIRFLOW_API_URL") or f"{request.url.scheme}://{request.url.netloc}").rstrip("/")


def call(base: str, who: Caller, method: str, path: str, body: dict | None = None, attempts: int = 3,
         timeout: float = TIMEOUT) -> dict[str, Any]:
    """One call to /api/v2/dags/<import DAG>[/<path>], retried when Airflow answers 5xx (a
    busy metadata database: SQLite under `airflow standalone` refuses writes while another
    holds it). Every call made here may be repeated: reads, the state change, and a
    trigger that names its run (a repeat finds the run, 409)."""
    url = f"/api/v2/dags/{IMPORT_DAG_ID}" + (f"/{path}" if path else "")
    with httpx.Client(base_url=base, timeout=timeout) as client:
        for attempt in range(attempts):
            try:
                response = client.request(method, url, json=body, headers={"Authorization": f"Bearer {who.token}"})
            except httpx.HTTPError as exc:
                if attempt == attempts - 1:
                    raise HTTPException(status.HTTP_502_BAD_GATEWAY,
                                        f"could not reach Airflow's REST API at {base}: {exc}") from None
            else:
                if response.status_code < 500 or attempt == attempts - 1:
                    break
            time.sleep(1 + attempt)
    if response.status_code >= 400:
        code = response.status_code if response.status_code in PASSED_ON else status.HTTP_502_BAD_GATEWAY
        raise HTTPException(code, f"Airflow answered {response.status_code}: {response.text[:500]}")
    return response.json()


def run_id_for(import_id: str) -> str:
    return f"upload__{import_id}"


def trigger(base: str, who: Caller, conf: dict[str, Any]) -> dict[str, Any]:
    """The import's DAG run, named after the import so that a trigger repeated after an
    error starts no second run; returns Airflow's DAG run (its `dag_run_id`)."""
    run_id = run_id_for(conf["import_id"])
    try:
        return call(base, who, "POST", "dagRuns", {"dag_run_id": run_id, "logical_date": None, "conf": conf})
    except HTTPException as exc:
        if exc.status_code != status.HTTP_409_CONFLICT:
            raise
        return call(base, who, "GET", f"dagRuns/{quote(run_id, safe='')}")


def fail_run(base: str, who: Caller, dag_run_id: str) -> None:
    """Mark a run failed: a queued run never starts; a running task is stopped by Airflow.
    A run Airflow no longer has is no error."""
    try:
        call(base, who, "PATCH", f"dagRuns/{quote(dag_run_id, safe='')}", {"state": "failed"})
    except HTTPException as exc:
        if exc.status_code != status.HTTP_404_NOT_FOUND:
            raise


def dag_paused(base: str, who: Caller) -> bool | None:
    """Whether the import DAG is paused in Airflow (its queued runs then never start); None
    when Airflow cannot say (unreachable, no such DAG yet, not the caller's to read). One
    attempt, a short timeout: the answer is a hint on a read, which must not fail for it."""
    try:
        dag = call(base, who, "GET", "", attempts=1, timeout=HINT_TIMEOUT)
    except (HTTPException, ValueError):  # ValueError: an answer that is not JSON
        return None
    paused = dag.get("is_paused")
    return paused if isinstance(paused, bool) else None
