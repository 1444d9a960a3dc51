"""The statuses of an import, the transitions allowed between them, and the one function
that changes an import's status.

    waiting ──> validating ──> awaiting_approval ──> importing ──> completed
       │            │ └──────────────────────────────> ┘ │
       │            └──> validation_failed               │
       └──────────────┴──────────┴───────────────────────┴──> cancelled, failed

A stage that Airflow retries, or `contact-import resume` resumes, enters its own status
again (validating, importing). Finished imports never change again: a file is imported
again as a new import. "Interrupted" is no status: it is derived from the import's
heartbeat and runner (heartbeat.py), so a resumed import simply goes on in its status.
"""
from __future__ import annotations

from typing import Any

from . import imports

WAITING = "waiting"
VALIDATING = "validating"
AWAITING_APPROVAL = "awaiting_approval"
IMPORTING = "importing"
COMPLETED = "completed"
VALIDATION_FAILED = "validation_failed"
CANCELLED = "cancelled"
FAILED = "failed"

STATUSES = (WAITING, VALIDATING, AWAITING_APPROVAL, IMPORTING, COMPLETED, VALIDATION_FAILED, CANCELLED, FAILED)
FINISHED = (COMPLETED, VALIDATION_FAILED, CANCELLED, FAILED)
RUNNING = (VALIDATING, IMPORTING)  # a stage works on the import: it has progress and beats
# The statuses in which the import's runner (its DAG run, a local process) owns it, so
# that it is interrupted when the runner is gone; awaiting_approval waits for a person.
OWNED_BY_RUNNER = (WAITING, *RUNNING)
_ENDED_EARLY = {CANCELLED, FAILED}

TRANSITIONS: dict[str, frozenset[str]] = {
    WAITING: frozenset({VALIDATING} | _ENDED_EARLY),
    VALIDATING: frozenset({VALIDATING, VALIDATION_FAILED, AWAITING_APPROVAL, IMPORTING} | _ENDED_EARLY),
    AWAITING_APPROVAL: frozenset({IMPORTING} | _ENDED_EARLY),
    IMPORTING: frozenset({IMPORTING, COMPLETED} | _ENDED_EARLY),
    **{status: frozenset() for status in FINISHED},
}


class IllegalTransition(Exception):
    """The import's status does not allow the change asked for."""

    def __init__(self, import_id: str, current: str, wanted: str):
        super().__init__(f"import {import_id} is {current}; it cannot become {wanted}")
        self.current, self.wanted = current, wanted


class AlreadyFinished(IllegalTransition):
    """The import already ended (completed, rejected, cancelled or failed)."""

    def __init__(self, import_id: str, current: str, wanted: str):
        Exception.__init__(self, f"import {import_id} already {current}")
        self.current, self.wanted = current, wanted


def change(conn, import_id: str, status: str, workspace_id: int | None = None, **fields: Any) -> str:
    """Move the import to `status`, setting `fields` with it in the caller's transaction;
    returns the status it had. Raises ImportNotFound, AlreadyFinished or IllegalTransition."""
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}")
    current = imports.lock(conn, import_id, workspace_id)
    if status not in TRANSITIONS[current]:
        raise (AlreadyFinished if current in FINISHED else IllegalTransition)(import_id, current, status)
    if status in FINISHED:
        fields["finished_at"] = imports.NOW
    elif status == VALIDATING and current == WAITING:
        fields["started_at"] = imports.NOW
    imports.set_fields(conn, import_id, _status=status, **fields)
    return current


def end(conn, import_id: str, status: str, message: str, workspace_id: int | None = None) -> bool:
    """End an unfinished import (cancelled, failed) with `message`; False when it had
    already ended, which is no error for whoever reports a run's end after the fact."""
    try:
        change(conn, import_id, status, workspace_id, message=message)
        return True
    except AlreadyFinished:
        return False
