"""Airflow on this machine with this checkout's DAGs and plugin: the environment that
`make airflow` (scripts/airflow_local.py) and a local `contact-import import` give it.

SQLite metadata under $CONTACT_IMPORT_DATA_DIR/airflow unless AIRFLOW_HOME says
otherwise; the CDP database handed over as Airflow's connection `cdp_default`.
"""
from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from . import config
from .context import CONNECTION_ID, connection_json
from .endpoints import IMPORT_DAG_ID

DAGS_FOLDER = config.project_root() / "dags"
PLUGINS_FOLDER = config.project_root() / "plugins"


def environment(url: str) -> dict[str, str]:
    """This process's environment plus what a local Airflow on this checkout needs."""
    home = Path(os.environ.get("AIRFLOW_HOME") or config.data_dir() / "airflow").resolve()
    env = dict(os.environ)
    env.update({
        "AIRFLOW_HOME": str(home),
        "CONTACT_IMPORT_DATA_DIR": str(config.data_dir().resolve()),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # `make demo` records the DAGs in the same metadata database `make airflow` uses later
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        f"AIRFLOW_CONN_{CONNECTION_ID.upper()}": connection_json(url),
    })
    return env


def run_import(conf: dict, url: str) -> Path:
    """One run of DAG contact_import in a child process (`airflow dags test`, Airflow's own
    dag.test(), which runs the tasks in that process); returns its log file. The child dies
    with this process: this process is the import's runner (heartbeat.py), so an import
    whose `contact-import import` was killed is interrupted, not carried on unseen."""
    env = environment(url)
    home = Path(env["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    logs = config.data_dir() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"import-{conf['import_id']}.log"
    airflow = str(Path(sys.executable).parent / "airflow")
    with log.open("w") as out:
        if not (home / "airflow.db").exists():
            subprocess.run([airflow, "db", "migrate"], env=env, stdout=out, stderr=out, check=True,
                           preexec_fn=_die_with(os.getpid()))
        started = time.monotonic()
        subprocess.run([airflow, "dags", "test", IMPORT_DAG_ID, "-c", json.dumps(conf)],
                       env=env, stdout=out, stderr=out, preexec_fn=_die_with(os.getpid()))
        out.write(f"\n# dag run took {time.monotonic() - started:.1f}s\n")
    return log


def _die_with(parent: int):
    """A child's pre-exec step that has the kernel kill it when `parent` dies (Linux's
    PR_SET_PDEATHSIG; elsewhere the child runs on, beating, and its import is not
    interrupted until it ends)."""
    if not sys.platform.startswith("linux"):
        return None

    def arrange() -> None:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before the line above
            os._exit(1)
    return arrange
