"""Rows sharing a profile: the groups SharedProfiles finds across chunks equal the connected
components of 'same email or same phone', computed here the plain way."""
from __future__ import annotations

import random

import pandas as pd
import pytest

from contact_import.profiles import SharedProfiles


def components(emails: list, phones: list) -> dict[int, int]:
    """Row -> the first row of its group, for groups of more than one row (union-find)."""
    parent = list(range(len(emails)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for column in (emails, phones):
        first: dict[str, int] = {}
        for row, value in enumerate(column):
            if value:
                a, b = root(row), root(first.setdefault(value, row))
                parent[max(a, b)] = min(a, b)
    roots = [root(i) for i in range(len(emails))]
    sizes: dict[int, int] = {}
    for r in roots:
        sizes[r] = sizes.get(r, 0) + 1
    return {i: r for i, r in enumerate(roots) if sizes[r] > 1}


@pytest.mark.parametrize("seed", range(8))
def test_groups_are_the_components_of_shared_emails_and_phones(seed):
    rng = random.Random(seed)
    rows = rng.randint(1, 400)
    values = rng.randint(1, 60)  # few values: long chains of rows joined by email, then phone, ...
    emails = [rng.choice([None, "", f"e{rng.randrange(values)}@x"]) for _ in range(rows)]
    phones = [rng.choice([None, f"8869{rng.randrange(values)}"]) for _ in range(rows)]
    shared = SharedProfiles()
    chunk = rng.randint(1, 50)
    for start in range(0, rows, chunk):
        shared.add(pd.Series(emails[start:start + chunk], dtype=object),
                   pd.Series(phones[start:start + chunk], dtype=object))
    assert shared.groups() == components(emails, phones)


def test_no_shared_values_no_groups():
    shared = SharedProfiles()
    shared.add(pd.Series(["a@x", None]), pd.Series([None, "886911"]))
    assert shared.groups() == {}
    assert SharedProfiles().groups() == {}
