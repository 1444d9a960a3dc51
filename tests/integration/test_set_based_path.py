from pathlib import Path
"""The upsert settles most rows in SQL (new contacts nothing else touches, stored contacts
a row would not change) and plans the rest row by row in Python. Both ways must end alike.

Each round imports the same random file into two databases, one with the set-based path
and one planning every row in Python, and compares what a user sees: the export (which
contacts share a customer, every field, tags), the counts, the warnings and the preview.
Users keep their own values most of the time (so later rounds find unchanged rows and new
ones), and sometimes take a value from a small shared pool (identity matches, conflicts,
rows sharing a profile); small chunks put each relation across a chunk boundary.
"""
import random

import pytest

from contact_import import config, db, import_folder, imports, intake, statuses, tasks, upsert, workspaces
from contact_import.channels import TAG_MODES, get_channel
from tests.helpers import (EXAMPLES, LINE_HEADER, ctx, customer_groups, exported, issue_keys, line_id,
                           without_customer_ids, write_csv)

SHARED_EMAILS = [f"shared{n}@example.com" for n in range(6)]
SHARED_PHONES = [f"88691200000{n}" for n in range(6)]
TAGS = ["VIP", "新客", "台北", "回購"]


def _value(rng: random.Random, own: str, someone_elses: str, shared: list[str]) -> str:
    roll = rng.random()
    return (own if roll < 0.7 else someone_elses if roll < 0.8 else rng.choice(shared) if roll < 0.9 else "")


def random_file(rng: random.Random, path, sent: dict[int, str], users: int = 100, rows: int = 35):
    """A file of `rows` users; half the users sent before get their last row again (`sent`)."""
    lines = []
    for user in rng.sample(range(users), rows):
        if user in sent and rng.random() < 0.5:
            lines.append(sent[user])
            continue
        pick = random.Random(user) if rng.random() < 0.5 else rng  # the user's usual cells, or any
        other = pick.randrange(users)
        tags = pick.sample(TAGS, pick.randint(0, 2))
        sent[user] = ",".join([
            line_id(user), pick.choice(["Ann", "Ben", "Cat", "Dan", ""]),
            _value(pick, f"user{user}@example.com", f"user{other}@example.com", SHARED_EMAILS),
            _value(pick, f"8869130{user:05d}", f"8869130{other:05d}", SHARED_PHONES),
            pick.choice(["male", "female", ""]), pick.choice(["1990-01-02", "1985-12-31", ""]),
            '"' + ",".join(tags) + '"', "", "", pick.choice(["Gold", "Silver", ""]), pick.choice(["1", "2", ""])])
        lines.append(sent[user])
    return write_csv(path, LINE_HEADER, lines)


def _normalised(url: str, path, tag_mode: str):
    import_id = intake.create_import(ctx(url), workspace="demo", channel="line", tag_mode=tag_mode, file=str(path))
    for stage in (tasks.detect_encoding, tasks.map_columns, tasks.validate):
        stage(ctx(url), import_id)
    with db.transaction(url) as conn:
        record = imports.get(conn, import_id)
    assert record["status"] != statuses.VALIDATION_FAILED, record
    return Path(record["work_dir"]) / import_folder.NORMALISED


def _import(url: str, path, tag_mode: str, row_by_row: bool):
    """(preview counts and warnings, import counts and warnings, [rows settled in SQL, of which new])"""
    conn = db.connect(url)
    try:
        ws = workspaces.get(conn, "demo")
        outcome, settled = [], [0, 0]
        for dry_run in (True, False):
            warnings = []

            def on_chunk(number, chunk, plan):
                warnings.extend(plan.warnings)
                if not dry_run:
                    settled[0] += plan.set_based
                    settled[1] += plan.set_based_new

            counts = upsert.run(conn, ws, get_channel("line"), tag_mode, path, config.chunk_rows(),
                                on_chunk=on_chunk, dry_run=dry_run, row_by_row=row_by_row)
            conn.rollback() if dry_run else conn.commit()
            outcome.append((counts, issue_keys(warnings)))
        return outcome, settled
    finally:
        conn.close()


@pytest.mark.parametrize("seed", range(8))
def test_the_set_based_path_ends_like_planning_every_row_in_python(monkeypatch, cdp_url, second_cdp_url,
                                                                    tmp_path, seed):
    rng = random.Random(seed)
    for url in (cdp_url, second_cdp_url):
        with db.transaction(url) as conn:
            workspaces.apply(conn, workspaces.load_file(EXAMPLES / "demo-workspace.yaml"))
    monkeypatch.setenv("CONTACT_IMPORT_CHUNK_ROWS", str(3 + seed * 2))
    settled, sent = [0, 0], {}
    for round_ in range(5):
        tag_mode = rng.choice(TAG_MODES)  # mixed: an overwrite after appends has tags to remove
        path = _normalised(cdp_url, random_file(rng, tmp_path / f"round{round_}.csv", sent), tag_mode)
        (preview, imported), in_sql = _import(cdp_url, path, tag_mode, row_by_row=False)
        reference, none_in_sql = _import(second_cdp_url, path, tag_mode, row_by_row=True)
        assert [preview, imported] == reference, f"round {round_}"
        assert preview == imported, "the preview counts and warns like the import"
        assert none_in_sql == [0, 0]
        _assert_same_contacts(cdp_url, second_cdp_url)
        settled = [a + b for a, b in zip(settled, in_sql)]
    new, unchanged = settled[1], settled[0] - settled[1]
    assert new > 0 and unchanged > 0, "both set-based cases were exercised"


def _assert_same_contacts(url: str, reference_url: str) -> None:
    ours, theirs = exported(url), exported(reference_url)
    assert without_customer_ids(ours) == without_customer_ids(theirs)
    assert customer_groups(ours) == customer_groups(theirs)


@pytest.mark.parametrize("via", ["email", "phone"])
def test_a_row_in_identity_conflict_stays_one_when_sent_again(cdp_url, second_cdp_url, tmp_path, via):
    """B's row carries a value A's (older) customer holds: B's customer takes it too, with an
    identity_conflict warning; sent again unchanged, the row is still in conflict."""
    for url in (cdp_url, second_cdp_url):
        with db.transaction(url) as conn:
            workspaces.apply(conn, workspaces.load_file(EXAMPLES / "demo-workspace.yaml"))
    a = f"{line_id(1)},Amy,amy@example.com,886913000001,,,,,,,"
    b = f"{line_id(2)},Bob,bob@example.com,886913000002,,,,,,,"
    b_takes_amys = (b.replace("bob@example.com", "amy@example.com") if via == "email"
                    else b.replace("886913000002", "886913000001"))
    files = [[a, b], [b_takes_amys], [b_takes_amys]]
    outcomes = []
    for number, lines in enumerate(files):
        path = _normalised(cdp_url, write_csv(tmp_path / f"{number}.csv", LINE_HEADER, lines), "append")
        outcome, _ = _import(cdp_url, path, "append", row_by_row=False)
        assert outcome == _import(second_cdp_url, path, "append", row_by_row=True)[0]
        outcomes.append(outcome[1])
    _assert_same_contacts(cdp_url, second_cdp_url)
    for counts, warnings in outcomes[1:]:
        assert [w[:3] for w in warnings] == [("identity_conflict", 2, via)]
    assert outcomes[1][0]["updated"] == 1 and outcomes[2][0]["unchanged"] == 1
