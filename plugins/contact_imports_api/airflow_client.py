"""Calls to Airflow's own REST API (/api/v2) with the caller's token, so Airflow checks
each one as if the caller made it. Blocking (httpx): the routes call these from FastAPI's
thread pool, never on the event loop.

Airflow is reached at AIRFLOW_API_URL when set (an API server behind a proxy), else at
the address the request came to: often the very API server serving this request, whose
one worker may be too busy to answer. So every call has a time budget
(CONTACT_IMPORT_AIRFLOW_TIMEOUT), and a call that gets no usable answer within it raises
AirflowUnavailable, which the routes turn into a degraded answer, never a 500.
"""
from __future__ import annotations

import itertools
import os
import time
from typing import Any
from urllib.parse import quote

import httpx
from fastapi import HTTPException, Request, status

from contact_import import config
from contact_import.endpoints import IMPORT_DAG_ID

from .auth import Caller

PASSED_ON = (403, 404, 409)  # Airflow's answers the caller gets as they are; other refusals are 502
LAST_TRY = 0.5  # seconds: a repeat needs at least this much of the budget left


class AirflowUnavailable(Exception):
    """Airflow's REST API could not be asked: no connection, no answer within the budget,
    5xx answers until it ran out, or an answer that is not JSON."""


def base_url(request: Request) -> str:
    return (os.environ.get("AIRFLOW_API_URL") or f"{request.url.scheme}://{request.url.netloc}").rstrip("/")


def hint_budget() -> float:
    """A read that only adds a hint to an answer must not hold the answer up."""
    return config.airflow_api_timeout() / 3


def call(base: str, who: Caller, method: str, path: str, body: dict | None = None,
         budget: float | None = None, repeat: bool = True) -> Any:
    """One call to /api/v2/dags/<import DAG>[/<path>] within `budget` seconds (default
    CONTACT_IMPORT_AIRFLOW_TIMEOUT), repeated while time is left when Airflow does not
    answer or answers 5xx (a busy metadata database: SQLite under `airflow standalone`
    refuses writes while another holds it). Every call made here may be repeated: reads,
    the state change, and a trigger that names its run (a repeat finds the run, 409).
    Raises AirflowUnavailable, or HTTPException for Airflow's refusal."""
    budget = config.airflow_api_timeout() if budget is None else budget
    deadline = time.monotonic() + budget
    url = f"/api/v2/dags/{IMPORT_DAG_ID}" + (f"/{path}" if path else "")
    with httpx.Client(base_url=base) as client:
        for attempt in itertools.count():
            try:
                response = client.request(method, url, json=body, timeout=max(deadline - time.monotonic(), 0.1),
                                          headers={"Authorization": f"Bearer {who.token}"})
            except httpx.HTTPError as exc:  # refused, reset, timed out
                problem = f"{type(exc).__name__}{f': {exc}' if str(exc) else ''}"
            else:
                if response.status_code < 500:
                    break
                problem = f"it answered {response.status_code}: {response.text[:300]}"
            pause = 1 + attempt
            if not repeat or deadline - time.monotonic() < pause + LAST_TRY:
                raise AirflowUnavailable(f"Airflow's REST API at {base} gave no usable answer within"
                                         f" {budget:g} s ({problem})")
            time.sleep(pause)
    if response.status_code >= 400:
        code = response.status_code if response.status_code in PASSED_ON else status.HTTP_502_BAD_GATEWAY
        raise HTTPException(code, f"Airflow answered {response.status_code}: {response.text[:500]}")
    try:
        return response.json()
    except ValueError:
        raise AirflowUnavailable(f"Airflow's REST API at {base} answered {response.status_code} with something"
                                 f" that is not JSON: {response.text[:200]!r}") from None


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
    when Airflow says it cannot tell (no such DAG yet, not the caller's to read). One
    attempt within hint_budget(); raises AirflowUnavailable when Airflow does not answer."""
    try:
        dag = call(base, who, "GET", "", budget=hint_budget(), repeat=False)
    except HTTPException:
        return None
    paused = dag.get("is_paused") if isinstance(dag, dict) else None
    return paused if isinstance(paused, bool) else None
