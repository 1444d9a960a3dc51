"""The processes of `make airflow`: each Airflow command in its own process group, its
output prefixed with its name, and stopping them in order (SIGINT or SIGTERM, then
SIGTERM and SIGKILL to whatever is left of a group)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from contact_import import config

ROOT = config.project_root()
STOP_GRACE_SECONDS = 30  # Airflow's own shutdown after SIGINT, before SIGTERM/SIGKILL of the rest
# Celery mode stops in two batches (the API server last: finishing tasks still report to it). The
# sum of the worst cases (20 + 2x5, then 10 + 2x5) stays under the live tests' 60 s before SIGKILL.
COMPONENT_STOP_GRACE_SECONDS = 20
API_STOP_GRACE_SECONDS = 10
OUTPUT_LOCK = threading.Lock()


def say(message: str = "") -> None:
    print(f"airflow_local | {message}", flush=True)


class Stop(Exception):
    pass


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_group(proc: subprocess.Popen) -> None:
    """SIGINT to standalone (it stops its components), then SIGTERM and SIGKILL to whatever is left."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            pass
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        if not group_alive(proc.pid):  # standalone leads its own process group
            break
        say(f"sending {sig.name} to the remaining Airflow processes")
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace
        while group_alive(proc.pid) and time.monotonic() < deadline:
            proc.poll()  # reap the leader if it has exited
            time.sleep(0.2)
    proc.poll()


class Component:
    """One Airflow command as its own process group; its output goes to stdout prefixed with its name.

    It adds itself to `started` at once, so a stop signal right after the start still finds it.
    """

    def __init__(self, name: str, args: list[str], env: dict[str, str], started: list[Component]):
        self.name = name
        self.proc = subprocess.Popen(args, env=env, cwd=str(ROOT), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        started.append(self)
        threading.Thread(target=self._pump, name=f"output of {name}", daemon=True).start()

    def _pump(self) -> None:
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            with OUTPUT_LOCK:
                sys.stdout.write(f"{self.name:<13} | {line}\n")
                sys.stdout.flush()


def stop_batch(components: list[Component], grace: float) -> None:
    """SIGTERM to each leader (its own shutdown), then SIGTERM and SIGKILL to what is left of each group."""
    live = [c for c in components if group_alive(c.proc.pid)]
    for c in live:
        if c.proc.poll() is None:
            c.proc.send_signal(signal.SIGTERM)
    for sig, wait in ((None, grace), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        if sig is not None:
            left = [c for c in live if group_alive(c.proc.pid)]
            if not left:
                break
            say(f"sending {sig.name} to what is left of {', '.join(c.name for c in left)}")
            for c in left:
                try:
                    os.killpg(c.proc.pid, sig)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            for c in live:
                c.proc.poll()  # reap the leaders that have exited
            if not any(group_alive(c.proc.pid) for c in live):
                break
            time.sleep(0.2)
    for c in live:
        c.proc.poll()


def stop_components(components: list[Component]) -> None:
    """Everything but the API server first (the worker's finishing tasks still report to it), then it."""
    stop_batch([c for c in components if c.name != "api-server"], COMPONENT_STOP_GRACE_SECONDS)
    stop_batch([c for c in components if c.name == "api-server"], API_STOP_GRACE_SECONDS)


def run_celery(env: dict[str, str], api_up: Callable[[], bool], show, started: list[Component]) -> int:
    """db migrate, then the components; the worker once the API server answers. Returns when one exits."""
    airflow = str(Path(sys.executable).parent / "airflow")
    migrate_db = Component("db-migrate", [airflow, "db", "migrate"], env, started)
    code = migrate_db.proc.wait()
    if code != 0:
        say(f"airflow db migrate exited with {code}")
        return 1
    for name in ("api-server", "scheduler", "dag-processor", "triggerer"):
        Component(name, [airflow, name], env, started)
    worker = None
    while True:
        for c in started:
            if c is not migrate_db and c.proc.poll() is not None:
                say(f"{c.name} exited with {c.proc.returncode}; stopping the other components")
                return 1
        if worker is None and api_up():
            say("the API server is up; starting the Celery worker")
            # No mingle/gossip: one worker here needs no sync with others, and it stays quiet towards
            # other workers on the same Redis.
            worker = Component("celery-worker", [airflow, "celery", "worker", "--without-mingle",
                                                 "--without-gossip"], env, started)
            show()
        time.sleep(1)
