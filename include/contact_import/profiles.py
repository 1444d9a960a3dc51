"""Rows of one file that share a profile (SPEC section 2), found across the whole file.

Rows sharing an email or a phone (directly or through another row) share one customer
and overwrite its fields in file order; the last non-empty value of each field, and of
each attribute key, wins. Writing that end state on every row of the group means a
re-import of the same file finds each row equal to what is stored, instead of flipping
the profile back and forth. The file is validated and written chunk by chunk, so the
groups are collected while it streams past and folded in two more streaming passes.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator

import pandas as pd

PROFILE = ("name", "email", "phone", "gender", "birthday")


def _present(value) -> bool:
    return isinstance(value, str) and value != ""  # empty cells are None, NaN or ""


class SharedProfiles:
    """Union-find over the rows of a file, in file order, keyed by email and phone."""

    def __init__(self) -> None:
        self._parent: list[int] = []
        self._first: dict[str, dict[str, int]] = {"email": {}, "phone": {}}

    def add(self, emails: Iterable, phones: Iterable) -> None:
        for email, phone in zip(emails, phones):
            i = len(self._parent)
            self._parent.append(i)
            for key, value in (("email", email), ("phone", phone)):
                if _present(value):
                    j = self._first[key].setdefault(value, i)
                    if j != i:
                        self._parent[self._root(i)] = self._root(j)

    def _root(self, i: int) -> int:
        parent = self._parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def groups(self) -> dict[int, int]:
        """Row position -> its group, for the rows whose group has more than one row."""
        self._first = {"email": {}, "phone": {}}  # not needed any more: free it before folding
        roots = [self._root(i) for i in range(len(self._parent))]
        sizes = Counter(roots)
        return {i: r for i, r in enumerate(roots) if sizes[r] > 1}


def _shared_rows(chunk: pd.DataFrame, start: int, groups: dict[int, int]) -> tuple[list[int], list[int]]:
    offsets = [k for k in range(len(chunk)) if start + k in groups]
    return offsets, [groups[start + k] for k in offsets]


def end_states(chunks: Iterable[pd.DataFrame], groups: dict[int, int]) -> dict[int, tuple[list, dict]]:
    """Each group's profile after all its rows were applied in file order."""
    states: dict[int, tuple[list, dict]] = {}
    start = 0
    for chunk in chunks:
        offsets, owners = _shared_rows(chunk, start, groups)
        rows = chunk.iloc[offsets]
        for owner, values, attributes in zip(owners, rows[list(PROFILE)].itertuples(index=False),
                                              rows["attributes"]):
            profile, merged = states.setdefault(owner, ([None] * len(PROFILE), {}))
            for k, value in enumerate(values):
                if _present(value):
                    profile[k] = value
            if _present(attributes):
                merged.update(json.loads(attributes))
        start += len(chunk)
    return states


def fold(chunks: Iterable[pd.DataFrame], groups: dict[int, int],
         states: dict[int, tuple[list, dict]]) -> Iterator[pd.DataFrame]:
    """The chunks again, each shared row carrying its group's end state."""
    start = 0
    for chunk in chunks:
        offsets, owners = _shared_rows(chunk, start, groups)
        start += len(chunk)
        if offsets:
            chunk = chunk.copy()
            positions = [chunk.columns.get_loc(c) for c in PROFILE]
            chunk.iloc[offsets, positions] = [states[o][0] for o in owners]
            chunk.iloc[offsets, chunk.columns.get_loc("attributes")] = [
                json.dumps(states[o][1], ensure_ascii=False) if states[o][1] else None for o in owners]
        yield chunk


def fold_file(source: Path, target: Path, groups: dict[int, int], chunk_rows: int) -> None:
    """Copy the normalised CSV `source` to `target` with shared profiles folded."""

    def chunks() -> Iterator[pd.DataFrame]:
        for chunk in pd.read_csv(source, dtype=str, keep_default_na=False, chunksize=chunk_rows,
                                 encoding="utf-8"):
            yield chunk.astype(object).where(chunk != "", None)

    if not groups:
        source.replace(target)
        return
    states = end_states(chunks(), groups)
    tmp = target.with_name(target.name + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as out:
        for number, chunk in enumerate(fold(chunks(), groups, states)):
            chunk.to_csv(out, index=False, header=number == 0)
    tmp.replace(target)


def fold_shared_profiles(frame: pd.DataFrame) -> pd.DataFrame:
    """The same fold for a frame held in memory."""
    shared = SharedProfiles()
    shared.add(frame["email"], frame["phone"])
    groups = shared.groups()
    if not groups:
        return frame
    return next(fold([frame], groups, end_states([frame], groups)))
