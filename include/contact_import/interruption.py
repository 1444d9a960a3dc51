"""Stopping a running upsert when Airflow stops its task.

When a running task is marked failed or cleared, Airflow's supervisor sends SIGINT,
then SIGTERM, then SIGKILL, a few seconds apart. The task process has both signals at
their default (die at once), so without this the import would stay `importing`.
Here the first signal cancels the statement in flight (a chunk's merge can take
seconds; Python runs signal handlers only between bytecodes, so a thread woken through
the signal wake-up fd calls the thread-safe `connection.cancel()`), and `Stopped` is
raised in the main thread; the caller rolls the chunk back and records the import.
"""
from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from typing import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(BaseException):
    """The process was asked to stop (BaseException, like KeyboardInterrupt: no broad
    `except Exception` on the way up may swallow it)."""


@contextmanager
def stop_on_signals(conn) -> Iterator[threading.Event]:
    """Within the block, SIGINT/SIGTERM cancel `conn`'s running statement (if any) and raise Stopped.

    Yields an Event that is set once a signal came, for checks between chunks. Outside
    the main thread (signals cannot be handled there) the block runs unprotected.
    """
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)

    def handler(signum, frame):
        if not stop.is_set():
            stop.set()
            raise Stopped(signal.Signals(signum).name)

    def watch() -> None:
        while data := os.read(read_fd, 64):
            if conn is not None and any(sig in data for sig in SIGNALS):
                conn.cancel()

    previous = {sig: signal.signal(sig, handler) for sig in SIGNALS}
    previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    watcher = threading.Thread(target=watch, name="stop-on-signals", daemon=True)
    watcher.start()
    try:
        yield stop
    finally:
        signal.set_wakeup_fd(previous_fd)
        for sig, old in previous.items():
            signal.signal(sig, old)
        os.close(write_fd)  # ends the watcher
        watcher.join()
        os.close(read_fd)
