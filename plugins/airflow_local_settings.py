"""Airflow's local settings for this project: Airflow imports this module (found on the
plugins folder's path) at the start of each of its processes.

The scheduler and a Celery worker import the import tasks' libraries before they fork
the processes that run tasks (contact_import.preload says why). Other processes (the
API server, the DAG processor, the CLI) import nothing more.
"""
import sys


def _forks_task_processes(argv: list[str]) -> bool:
    command = [arg for arg in argv[1:] if not arg.startswith("-")][:2]
    return command[:1] == ["scheduler"] or command == ["celery", "worker"]


if _forks_task_processes(sys.argv):
    from contact_import import preload

    preload.task_libraries()
