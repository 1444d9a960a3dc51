"""The preview's sample: the concrete changes whoever approves an import sees before
anything is written (a renamed customer, an attribute, tags added and removed, a new
contact, bindings), at most 20, the first ones in file order, and nothing written."""
from __future__ import annotations

from pathlib import Path

import pytest

from contact_import import changes, db, imports, intake, stages, statuses, tasks, workspaces
from tests.helpers import LINE_HEADER, ctx, exported, line_id, run_stages, table_counts, write_csv

U1, U2, U3, U4 = (line_id(n) for n in (1, 2, 3, 4))


def validated(cdp_url: str, path: Path, tag_mode: str = "append") -> dict:
    """An import that requires approval, through validation (its preview made): its record."""
    import_id = intake.create_import(ctx(cdp_url), workspace="demo", channel="line", tag_mode=tag_mode,
                                     file=str(path), require_approval=True)
    for stage in (tasks.detect_encoding, tasks.map_columns, tasks.validate):
        stage(ctx(cdp_url), import_id)
    assert tasks.approval_needed(ctx(cdp_url), import_id)
    with db.transaction(cdp_url) as conn:
        return imports.get(conn, import_id)


def cdp_without_imports(cdp_url: str) -> tuple[dict, dict]:
    """Every table's row count but the imports' own, and the contacts as exported."""
    counts = table_counts(cdp_url)
    counts.pop("imports")
    return counts, exported(cdp_url)


def test_the_preview_lists_what_the_import_will_change_and_writes_nothing(cdp_url, demo_workspace, tmp_path):
    base = write_csv(tmp_path / "base.csv", LINE_HEADER, [
        f'{U1},Ann,ann@example.com,,,,"VIP,新客",,,Gold,',
        f"{U2},Ben,,,,,,amy@shop.example,S001,,",
        f"{U3},Cat,,,,,,ben@shop.example,S002,,",
    ])
    assert run_stages(cdp_url, base)["status"] == statuses.COMPLETED
    before = cdp_without_imports(cdp_url)

    june = write_csv(tmp_path / "june.csv", LINE_HEADER, [
        f'{U1},Anne,ann@example.com,,,,"VIP,台北",,,Silver,',  # renamed, another level, one tag for another
        f"{U2},Ben,,,,,,ben@shop.example,S002,,",  # moves to Ben's store
        f"{U3},Cat,,,,,,UNASSIGNED,,,",  # unbound
        f"{U4},Dan,dan@example.com,,,,新客,amy@shop.example,S001,,",  # new
    ])
    record = validated(cdp_url, june, tag_mode="overwrite")

    assert record["status"] == statuses.AWAITING_APPROVAL
    assert record["preview_sample"] == [
        changes.change(2, U1, changes.FIELD, "name", "Ann", "Anne"),
        changes.change(2, U1, changes.ATTRIBUTE, "vip_level", "Gold", "Silver"),
        changes.change(2, U1, changes.TAGS, "tags", added=["台北"], removed=["新客"]),
        changes.change(3, U2, changes.BINDING, "binding", "amy@shop.example (S001)", "ben@shop.example (S002)"),
        changes.change(4, U3, changes.BINDING, "binding", "ben@shop.example (S002)", None),
        changes.change(5, U4, changes.NEW_CONTACT),
        changes.change(5, U4, changes.TAGS, "tags", added=["新客"]),
        changes.change(5, U4, changes.BINDING, "binding", None, "amy@shop.example (S001)"),
    ]
    assert cdp_without_imports(cdp_url) == before  # the preview planned all that and wrote none of it

    text = changes.approval_text(record, "/plugin/contact-imports")
    assert "**File:** `june.csv`" in text and "**Workspace:** `demo`" in text
    assert "- row 2, `" + U1 + "`: name: `Ann` → `Anne`" in text
    assert "- row 2, `" + U1 + "`: tags: + `台北`, − `新客`" in text
    assert "- row 4, `" + U3 + "`: binding: `ben@shop.example (S002)` → (unbound)" in text
    assert "- row 5, `" + U4 + "`: new contact" in text
    assert "- contacts to create: 1" in text and "- contacts to update: 1" in text
    assert "[Open the Contact imports page](/plugin/contact-imports)" in text


def test_an_import_without_approval_has_no_sample(cdp_url, demo_workspace, tmp_path):
    path = write_csv(tmp_path / "a.csv", LINE_HEADER, [f"{U1},Ann,,,,,,,,,"])
    record = run_stages(cdp_url, path)
    assert record["status"] == statuses.COMPLETED and record["preview_sample"] is None


def many_changes(path: Path, rows: int) -> Path:
    """Rows that alternate between new contacts (settled by the whole-file pass), renamed
    stored contacts (planned row by row) and rebound ones (the bindings' dry run)."""
    lines = []
    for n in range(rows):
        kind = n % 3
        if kind == 0:
            lines.append(f"{line_id(1000 + n)},New {n},,,,,Fresh,,,,")
        elif kind == 1:
            lines.append(f"{line_id(n)},Renamed {n},,,,,,,,,")
        else:
            lines.append(f"{line_id(n)},Stored {n},,,,,,ben@shop.example,S002,,")
    return write_csv(path, LINE_HEADER, lines)


@pytest.mark.parametrize("chunk_rows", [4, 7, 50000])
def test_the_sample_is_the_first_20_changes_in_file_order(monkeypatch, cdp_url, demo_workspace, tmp_path,
                                                          chunk_rows):
    stored = write_csv(tmp_path / "stored.csv", LINE_HEADER,
                       [f"{line_id(n)},Stored {n},,,,,,amy@shop.example,S001,," for n in range(60)])
    assert run_stages(cdp_url, stored)["status"] == statuses.COMPLETED
    monkeypatch.setenv("CONTACT_IMPORT_CHUNK_ROWS", str(chunk_rows))
    record = validated(cdp_url, many_changes(tmp_path / "many.csv", 60))
    sample = record["preview_sample"]

    monkeypatch.setattr(changes, "SAMPLE_SIZE", 1000)  # every change the preview finds
    with db.transaction(cdp_url) as conn:
        ws = workspaces.get(conn, "demo")
    every: list[dict] = []
    stages.preview(cdp_url, ws, "line", "append", Path(record["work_dir"]), sample=every)

    assert len(every) == 80 and len(sample) == 20  # 20 new contacts with their tag, 20 renames, 20 rebinds
    assert sample == every[:20]
    assert [c["row"] for c in every] == sorted(c["row"] for c in every)
    assert {c["change"] for c in sample} == {changes.NEW_CONTACT, changes.TAGS, changes.FIELD, changes.BINDING}
    assert sample[:4] == [changes.change(2, line_id(1000), changes.NEW_CONTACT),
                          changes.change(2, line_id(1000), changes.TAGS, "tags", added=["Fresh"]),
                          changes.change(3, line_id(1), changes.FIELD, "name", "Stored 1", "Renamed 1"),
                          changes.change(4, line_id(2), changes.BINDING, "binding", "amy@shop.example (S001)",
                                         "ben@shop.example (S002)")]
