"""The unchanged-rows shortcut never changes an outcome.

Each history is replayed into two databases: one with the shortcut (rows whose contact
holds their fingerprint skip the full path), one with it off. Imports of random files
(users often sending their last row again) are interleaved with direct edits of the CDP:
a customer renamed, a tag deleted or renamed, a contact's tag removed, a contact rebound
or unbound, a teammate deactivated, an attribute definition changed, a contact moved to
another customer, another customer taking a contact's email. After every step, what a
user sees must be the same: the export, which contacts share a customer, the import's
status, counts, warnings and the warnings' rows.
"""
import random
from pathlib import Path

import pytest

from contact_import import db, import_folder, imports, intake, statuses, tasks, unchanged, workspaces
from contact_import.channels import TAG_MODES
from tests.helpers import (EXAMPLES, LINE_HEADER, ctx, customer_groups, exported, issue_keys, line_id, run_stages,
                           without_customer_ids, write_csv)

SHARED_EMAILS = [f"shared{n}@example.com" for n in range(4)]
SHARED_PHONES = [f"88691200000{n}" for n in range(4)]
TAGS = ["VIP", "新客", "台北", "回購"]
BINDINGS = [("", ""), ("", ""), ("amy@shop.example", "S001"), ("ben@shop.example", "S002"), ("UNASSIGNED", "")]


def random_row(rng: random.Random, user: int, users: int) -> str:
    pick = random.Random(user) if rng.random() < 0.6 else rng  # the user's usual cells, or any
    roll = pick.random()
    email = (f"user{user}@example.com" if roll < 0.8 else rng.choice(SHARED_EMAILS) if roll < 0.9 else "")
    roll = pick.random()
    phone = (f"8869130{user:05d}" if roll < 0.8 else f"8869130{pick.randrange(users):05d}" if roll < 0.85
             else rng.choice(SHARED_PHONES) if roll < 0.9 else "")
    teammate, store = pick.choice(BINDINGS)
    return ",".join([line_id(user), pick.choice(["Ann", "Ben", "Cat", ""]), email, phone,
                     pick.choice(["male", "female", ""]), pick.choice(["1990-01-02", ""]),
                     '"' + ",".join(pick.sample(TAGS, pick.randint(0, 2))) + '"', teammate, store,
                     pick.choice(["Gold", "Silver", ""]), pick.choice(["1", "2", ""])])


def random_file(rng: random.Random, path: Path, sent: dict[int, str], users: int = 40, rows: int = 25) -> Path:
    """`rows` users; most of those sent before send their last row again."""
    lines = []
    for user in rng.sample(range(users), rows):
        if user not in sent or rng.random() < 0.25:
            sent[user] = random_row(rng, user, users)
        lines.append(sent[user])
    return write_csv(path, LINE_HEADER, lines)


def _customer_of(user: int) -> str:
    return f"(SELECT customer_id FROM cdp.contacts WHERE channel_user_id = '{line_id(user)}')"


def random_edit(rng: random.Random, users: int = 40) -> str:
    """One direct edit of the CDP, as SQL naming contacts by User ID (ids differ between databases)."""
    a, b = rng.sample(range(users), 2)
    return rng.choice([
        f"UPDATE cdp.customers SET name = 'Edited' WHERE id = {_customer_of(a)}",
        "DELETE FROM cdp.tags WHERE name = 'VIP'",
        "UPDATE cdp.tags SET name = '台北舊' WHERE name = '台北'"
        " AND NOT EXISTS (SELECT 1 FROM cdp.tags WHERE name = '台北舊')",
        f"DELETE FROM cdp.contact_tags WHERE contact_id IN"
        f" (SELECT id FROM cdp.contacts WHERE channel_user_id = '{line_id(a)}')",
        f"UPDATE cdp.bindings SET store_id = (SELECT id FROM cdp.stores WHERE code = 'S002'),"
        f" teammate_id = (SELECT id FROM cdp.teammates WHERE email = 'ben@shop.example')"
        f" WHERE contact_id IN (SELECT id FROM cdp.contacts WHERE channel_user_id = '{line_id(a)}')",
        f"DELETE FROM cdp.bindings WHERE contact_id IN"
        f" (SELECT id FROM cdp.contacts WHERE channel_user_id = '{line_id(a)}')",
        "UPDATE cdp.teammates SET active = NOT active WHERE email = 'amy@shop.example'",
        "UPDATE cdp.attribute_definitions SET options = CASE WHEN options @> '[\"Silver\"]'"
        " THEN '[\"Gold\", \"Bronze\"]'::jsonb ELSE '[\"Gold\", \"Silver\", \"Bronze\"]'::jsonb END"
        " WHERE key = 'vip_level'",
        f"UPDATE cdp.contacts SET customer_id = {_customer_of(b)}"
        f" WHERE channel_user_id = '{line_id(a)}' AND {_customer_of(b)} IS NOT NULL",
        f"UPDATE cdp.customers SET email = (SELECT email FROM cdp.customers WHERE id = {_customer_of(a)})"
        f" WHERE id = {_customer_of(b)}",
    ])


def _import(url: str, path: Path, tag_mode: str, shortcut: bool, monkeypatch) -> tuple[dict, int]:
    """What a user sees of the import, and how many rows it left out as unchanged."""
    monkeypatch.setenv("CONTACT_IMPORT_UNCHANGED_SHORTCUT", "1" if shortcut else "0")
    record = run_stages(url, path, tag_mode=tag_mode)
    with db.transaction(url) as conn:
        warned = issue_keys(imports.warning_rows(conn, record["id"]))
    seen = {key: record[key] for key in ("status", "result", "warnings", "processed_rows", "total_rows", "errors")}
    return {**seen, "warning_rows": warned}, unchanged.count(Path(record["work_dir"]) / import_folder.UNCHANGED)


def _assert_same_cdp(url: str, reference_url: str, step: str) -> None:
    ours, theirs = exported(url), exported(reference_url)
    assert without_customer_ids(ours) == without_customer_ids(theirs), step
    assert customer_groups(ours) == customer_groups(theirs), step


@pytest.mark.parametrize("seed", range(6))
def test_imports_with_the_shortcut_end_like_imports_without_it(cdp_url, second_cdp_url, tmp_path, monkeypatch,
                                                               seed):
    rng = random.Random(seed)
    for url in (cdp_url, second_cdp_url):
        with db.transaction(url) as conn:
            workspaces.apply(conn, workspaces.load_file(EXAMPLES / "demo-workspace.yaml"))
    # small chunks: the rows a shortcut row depends on sit in other chunks
    monkeypatch.setenv("CONTACT_IMPORT_CHUNK_ROWS", str(4 + seed))
    monkeypatch.setenv("CONTACT_IMPORT_VALIDATE_CHUNK_ROWS", str(3 + seed))
    sent: dict[int, str] = {}
    skipped, completed = 0, 0
    for step in range(14):
        if step > 1 and rng.random() < 0.4:
            edit = random_edit(rng)
            for url in (cdp_url, second_cdp_url):
                with db.transaction(url) as conn, conn.cursor() as cur:
                    cur.execute(edit)
            _assert_same_cdp(cdp_url, second_cdp_url, f"step {step}: {edit}")
            continue
        tag_mode = rng.choice(TAG_MODES) if rng.random() < 0.3 else "append"
        path = random_file(rng, tmp_path / f"step{step}.csv", sent)
        ours, left_out = _import(cdp_url, path, tag_mode, True, monkeypatch)
        reference, none_left_out = _import(second_cdp_url, path, tag_mode, False, monkeypatch)
        assert ours == reference, f"step {step}"
        assert none_left_out == 0
        _assert_same_cdp(cdp_url, second_cdp_url, f"step {step}")
        skipped += left_out
        completed += ours["status"] == statuses.COMPLETED
    assert completed and skipped, "the shortcut was used"


def _validated(url: str, path: Path, monkeypatch, shortcut: bool) -> str:
    monkeypatch.setenv("CONTACT_IMPORT_UNCHANGED_SHORTCUT", "1" if shortcut else "0")
    import_id = intake.create_import(ctx(url), workspace="demo", channel="line", tag_mode="append", file=str(path))
    for stage in (tasks.detect_encoding, tasks.map_columns, tasks.validate):
        stage(ctx(url), import_id)
    return import_id


def _finished(url: str, import_id: str) -> dict:
    for stage in (tasks.upsert_contacts, tasks.bind_teammates, tasks.finalize):
        stage(ctx(url), import_id)
    with db.transaction(url) as conn:
        return imports.get(conn, import_id)


def test_a_row_changed_between_validation_and_upsert_takes_the_full_path(cdp_url, second_cdp_url, tmp_path,
                                                                         monkeypatch):
    """Another import (or an edit) changes a contact after validation left its row out:
    the upsert finds the fingerprint gone, validates the file again and applies the row."""
    rows = [f"{line_id(n)},Person {n},p{n}@example.com,8869130{n:05d},,,VIP,amy@shop.example,S001,Gold,{n}"
            for n in range(30)]
    path = write_csv(tmp_path / "snapshot.csv", LINE_HEADER, rows)
    outcomes = []
    for url, shortcut in ((cdp_url, True), (second_cdp_url, False)):
        with db.transaction(url) as conn:
            workspaces.apply(conn, workspaces.load_file(EXAMPLES / "demo-workspace.yaml"))
        _finished(url, _validated(url, path, monkeypatch, shortcut))
        import_id = _validated(url, path, monkeypatch, shortcut)
        with db.transaction(url) as conn:
            listed = unchanged.count(Path(imports.get(conn, import_id)["work_dir"]) / import_folder.UNCHANGED)
        assert listed == (30 if shortcut else 0)
        with db.transaction(url) as conn, conn.cursor() as cur:  # between validation and the upsert
            cur.execute(f"UPDATE cdp.customers SET name = 'Renamed' WHERE id = {_customer_of(7)}")
        record = _finished(url, import_id)
        outcomes.append((record["status"], record["result"], record["processed_rows"]))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][1]["updated"] == 1 and outcomes[0][1]["unchanged"] == 29
    assert exported(cdp_url)[line_id(7)]["name"] == "Person 7"
    _assert_same_cdp(cdp_url, second_cdp_url, "after the upsert")


def test_a_suite_change_sends_every_row_the_full_path(cdp_url, demo_workspace, tmp_path, monkeypatch):
    rows = [f"{line_id(n)},Person {n},p{n}@example.com,,,,,,,," for n in range(10)]
    path = write_csv(tmp_path / "snapshot.csv", LINE_HEADER, rows)
    _finished(cdp_url, _validated(cdp_url, path, monkeypatch, True))

    def left_out() -> int:
        import_id = _validated(cdp_url, path, monkeypatch, True)
        with db.transaction(cdp_url) as conn:
            return unchanged.count(Path(imports.get(conn, import_id)["work_dir"]) / import_folder.UNCHANGED)

    assert left_out() == 10
    suites = tmp_path / "expectations"
    suites.mkdir()
    for suite in (EXAMPLES.parent / "expectations").glob("*.json"):
        (suites / suite.name).write_text(suite.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    monkeypatch.setenv("CONTACT_IMPORT_EXPECTATIONS", str(suites))
    assert left_out() == 0
