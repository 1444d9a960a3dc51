"""The library's Context in the API server: the CDP database from Airflow's connection
`cdp_default` (only from there: no other URL, never an embedded server), files through
Airflow's object storage. Built on first use and kept for the life of the process (a
changed connection takes effect when the API server restarts); no connection answers 503.
"""
from __future__ import annotations

import threading
from typing import Annotated

from fastapi import Depends, HTTPException, status

from contact_import import context

_lock = threading.Lock()
_context: context.Context | None = None


def load() -> context.Context:
    """The process's Context; raises context.NoDatabase while `cdp_default` is not defined."""
    global _context
    if _context is None:
        with _lock:
            if _context is None:
                _context = _build()
    return _context


def _build() -> context.Context:
    from airflow.exceptions import AirflowNotFoundException
    from airflow.models.connection import Connection
    from airflow.sdk import ObjectStoragePath

    try:
        connection = Connection.get_connection_from_secrets(context.CONNECTION_ID)
    except AirflowNotFoundException:
        raise context.NoDatabase(context.no_database_message()) from None
    return context.from_connection(connection, ObjectStoragePath)


def forget() -> None:
    """Drop the cached Context (tests)."""
    global _context
    with _lock:
        _context = None


def cdp_context() -> context.Context:
    """FastAPI dependency: the Context, or 503 with one line (no connection, or Airflow's
    database could not be read). A plain function, so FastAPI runs it in its thread pool
    (the first call reads Airflow's connection). The first
    request that reaches the database also starts this process's status sweep."""
    from . import sweep

    try:
        ctx = load()
    except context.NoDatabase as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
    except Exception as exc:  # Airflow's metadata database busy or down (SQLite locked, say): not now
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            f"Airflow's connection {context.CONNECTION_ID} could not be read: {exc}") from None
    sweep.start(load)
    return ctx


CDP = Annotated[context.Context, Depends(cdp_context)]
