"""Import, once, what the import tasks use, in a process that forks the task processes.

Airflow runs each task in a process forked from a long-lived one (the LocalExecutor's
workers fork from the scheduler; a Celery worker forks its pool). What that process has
imported, every task starts with: without this, each task process spends about 2 s
importing pandas and, in `validate`, 5-10 s importing Great Expectations (most of a
small file's time from upload to completed). `plugins/airflow_local_settings.py` calls
`task_libraries` in those processes only.
"""
from __future__ import annotations

import logging
import os


def task_libraries() -> None:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")  # no analytics thread in a process that forks
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations  # noqa: F401

    from . import binding, stages, tasks, unchanged, upsert, validation  # noqa: F401
