"""Seconds spent per step of a stage, recorded on the import (imports.timings) for
operators and `make bench`."""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterable, Iterator

Timings = dict[str, float]


@contextmanager
def timed(timings: Timings | None, step: str):
    started = time.monotonic()
    yield
    if timings is not None:  # a step that runs once per chunk adds up
        timings[step] = round(timings.get(step, 0.0) + time.monotonic() - started, 3)


def timed_iter(items: Iterable, timings: Timings | None, step: str) -> Iterator:
    """The items of `items`, the time spent producing them added to `step`."""
    iterator = iter(items)
    while True:
        with timed(timings, step):
            item = next(iterator, None)
        if item is None:
            return
        yield item
