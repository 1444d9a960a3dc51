"""Rows of one file that share a profile (docs/design.md#data-model), found across the whole file.

Rows sharing an email or a phone (directly or through another row) share one customer
and overwrite its fields in file order; the last non-empty value of each field, and of
each attribute key, wins. Writing that end state on every row of the group means a
re-import of the same file finds each row equal to what is stored, instead of flipping
the profile back and forth. The file is validated and written chunk by chunk, so the
groups are collected while it streams past and folded in two more streaming passes.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from . import normalised

PROFILE = ("name", "email", "phone", "gender", "birthday")


def _present(value) -> bool:
    return isinstance(value, str) and value != ""  # empty cells are None, NaN or ""


def fingerprints(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """A 128-bit fingerprint of each value (two independent 64-bit hashes) and which are present.

    What has to be remembered across a file (User IDs, emails, phones) is kept as 16 bytes
    a row instead of Python strings (~100 bytes each, plus a dict entry): at 1M rows
    that is the difference between 50 MB and 500 MB. Two distinct values share a
    fingerprint with odds of about 1 in 10^26 for a 1M-row file.
    """
    array = values.to_numpy(dtype=object)
    present = np.fromiter((_present(v) for v in array), dtype=bool, count=len(array))
    halves = [pd.util.hash_array(array, hash_key=key, categorize=False) for key in _HASH_KEYS]
    return np.ascontiguousarray(np.stack(halves, axis=1)).view("V16").reshape(-1), present


_HASH_KEYS = ("contact-import-1", "contact-import-2")


class SharedProfiles:
    """Rows that share an email or a phone, directly or through other rows, in file order."""

    def __init__(self) -> None:
        self._keys: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"email": [], "phone": []}
        self._rows = 0

    def add(self, emails: pd.Series, phones: pd.Series) -> None:
        self._keys["email"].append(fingerprints(emails))
        self._keys["phone"].append(fingerprints(phones))
        self._rows += len(emails)

    def groups(self) -> dict[int, int]:
        """Row position -> its group (the group's first row), for the rows whose group has
        more than one row.

        Each kind's fingerprints are sorted once (by their two halves) into groups of
        equal values; rows joined through both kinds then take the smallest position of
        their group, round after round, until none changes (a chain of rows sharing emails
        and phones alternately takes one round per link). About 40 bytes a row at the
        peak, where a sparse graph of every row for scipy's connected components would take
        over 100 MiB more at a million rows, validation's peak.
        """
        label = np.arange(self._rows, dtype=np.int64)
        partitions = []
        for kind in list(self._keys):
            parts, self._keys[kind] = self._keys[kind], []
            if parts:
                partitions.append(_groups_of_equal_values(parts))
            del parts
        partitions = [p for p in partitions if len(p[0])]
        changed = bool(partitions)
        while changed:
            changed = False
            for rows, group, count in partitions:
                smallest = np.full(count, np.iinfo(np.int64).max)
                np.minimum.at(smallest, group, label[rows])
                lower = smallest[group] < label[rows]
                if lower.any():
                    label[rows[lower]] = smallest[group][lower]
                    changed = True
        shared = np.unique(np.concatenate([rows for rows, _, _ in partitions])) if partitions else np.empty(0, int)
        return dict(zip(shared.tolist(), label[shared].tolist()))


def _groups_of_equal_values(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, int]:
    """The rows whose value another row has too, each with its group's number, and the
    number of groups: from one kind's (fingerprints, present) of every chunk."""
    present = np.flatnonzero(np.concatenate([p for _, p in parts]))
    halves = np.concatenate([k for k, _ in parts])[present].view(np.uint64).reshape(-1, 2)
    order = np.lexsort((halves[:, 1], halves[:, 0]))
    ordered = halves[order]
    starts = np.ones(len(order), dtype=bool)
    starts[1:] = (ordered[1:] != ordered[:-1]).any(axis=1)
    del halves, ordered
    group = np.empty(len(order), dtype=np.int64)
    group[order] = np.cumsum(starts) - 1
    repeated = np.bincount(group)[group] > 1
    rows, group = present[repeated], group[repeated]
    _, group = np.unique(group, return_inverse=True)  # numbered from 0 again
    return rows, group, int(group.max()) + 1 if len(group) else 0


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


def fold_file(source: Path, target: Path, groups: dict[int, int], chunk_rows: int) -> None:
    """Replace the normalised CSV `source` by `target`, with shared profiles folded.

    The copy goes record by record through the csv module, rewriting only the shared
    rows' cells: parsing every chunk into pandas and writing it back took 3x as long.
    """
    if not groups:
        source.replace(target)
        return
    columns = [*PROFILE, "attributes"]
    states = end_states(normalised.read(source, chunk_rows, columns), groups)
    tmp = target.with_name(target.name + ".tmp")
    with source.open(encoding="utf-8", newline="") as src, tmp.open("w", encoding="utf-8", newline="") as out:
        reader, writer = csv.reader(src), csv.writer(out, lineterminator="\n")
        header = next(reader)
        writer.writerow(header)
        profile_at, attributes_at = [header.index(c) for c in PROFILE], header.index("attributes")
        for position, record in enumerate(reader):
            group = groups.get(position)
            if group is not None:
                profile, attributes = states[group]
                for at, value in zip(profile_at, profile):
                    record[at] = "" if value is None else value
                record[attributes_at] = json.dumps(attributes, ensure_ascii=False) if attributes else ""
            writer.writerow(record)
    tmp.replace(target)
    source.unlink()
