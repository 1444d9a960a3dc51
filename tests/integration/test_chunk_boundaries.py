"""Validation and upsert run chunk by chunk; what spans chunks must come out as if the file were one chunk."""
import csv
import json

import pytest

from contact_import import cli, db, statuses, workspaces
from tests.helpers import (LINE_HEADER, customer_groups, exported, line_id, run_stages,
                           without_customer_ids, write_csv)

# Rows sharing a profile and repeating User IDs, spread so that with 3 rows per chunk
# every relation crosses a chunk boundary.
SHARED = [
    f"{line_id(1)},First,same@example.com,,male,,VIP,,,Gold,1",
    f"{line_id(2)},Other,other@example.com,886911000002,,,,,,,",
    f"{line_id(3)},Alone,alone@example.com,,,,,,,,",
    f"{line_id(4)},Second,,886911000002,,,新客,,,,2",          # shares Other's phone
    f"{line_id(5)},Third,same@example.com,886911000009,,,,,,,",  # shares First's email
    f"{line_id(6)},Fourth,,886911000009,female,,,,,Silver,",     # joins them through the phone
    f"{line_id(7)},Last,other@example.com,,,,,,,,",              # Other's group again
]


def _validate(capsys, cdp_url, path, tmp_path):
    cli.main(["--db", cdp_url, "validate", str(path), "--workspace", "demo", "--channel", "line", "--json",
              "--report-dir", str(tmp_path)])
    result = json.loads(capsys.readouterr().out)
    report = list(csv.reader(open(result["error_report"], encoding="utf-8-sig"))) if result["errors"] else []
    return result, report


def test_duplicate_user_ids_across_chunks_name_the_first_row_of_the_file(capsys, monkeypatch, cdp_url,
                                                                         demo_workspace, tmp_path):
    rows = [f"{line_id(n)},N{n},,,,,,,,," for n in range(1, 9)]
    rows[4] = f"{line_id(1)},Again,,,,,,,,,"   # line 6 repeats line 2 (an earlier chunk)
    rows[5] = f"{line_id(2)},Again,,,,,,,,,"   # line 7 repeats line 3 (an earlier chunk) ...
    rows[6] = f"{line_id(2)},Again,,,,,,,,,"   # ... and so does line 8, in the same chunk as 7
    rows[7] = "Ubad,Bad,,,,,,,,,"              # invalid, not a duplicate
    path = write_csv(tmp_path / "dups.csv", LINE_HEADER, rows)
    whole, whole_report = _validate(capsys, cdp_url, path, tmp_path / "whole")
    monkeypatch.setenv("CONTACT_IMPORT_VALIDATE_CHUNK_ROWS", "3")
    chunked, chunked_report = _validate(capsys, cdp_url, path, tmp_path / "chunked")
    assert chunked_report == whole_report
    assert [(r[0], r[3]) for r in chunked_report[1:]] == [
        ("6", "duplicate_user_id"), ("7", "duplicate_user_id"), ("8", "duplicate_user_id"),
        ("9", "invalid_user_id")]
    assert "row 2" in chunked_report[1][4] and "row 3" in chunked_report[2][4] and "row 3" in chunked_report[3][4]
    assert chunked["errors"] == whole["errors"] == 4


@pytest.mark.parametrize("tag_mode", ["append", "overwrite"])
def test_a_file_validated_and_imported_in_small_chunks_ends_like_one_chunk(monkeypatch, cdp_url, second_cdp_url,
                                                                          tmp_path, tag_mode):
    from tests.helpers import EXAMPLES

    for url in (cdp_url, second_cdp_url):
        with db.transaction(url) as conn:
            workspaces.apply(conn, workspaces.load_file(EXAMPLES / "demo-workspace.yaml"))
    path = write_csv(tmp_path / "shared.csv", LINE_HEADER, SHARED)
    whole = run_stages(cdp_url, path, tag_mode=tag_mode)
    monkeypatch.setenv("CONTACT_IMPORT_VALIDATE_CHUNK_ROWS", "3")
    monkeypatch.setenv("CONTACT_IMPORT_CHUNK_ROWS", "2")
    chunked = run_stages(second_cdp_url, path, tag_mode=tag_mode, require_approval=True)
    assert whole["status"] == chunked["status"] == statuses.COMPLETED
    assert chunked["result"] == whole["result"] == chunked["preview"]
    assert chunked["warnings"] == whole["warnings"] == {"profile_shared": 4}
    contacts = exported(second_cdp_url)
    assert without_customer_ids(contacts) == without_customer_ids(exported(cdp_url))
    assert customer_groups(contacts) == {frozenset({line_id(1), line_id(5), line_id(6)}), frozenset({line_id(2), line_id(4), line_id(7)}),
                      frozenset({line_id(3)})}
    first = contacts[line_id(1)]
    assert (first["name"], first["gender"], first["phone"]) == ("Fourth", "female", "886911000009")
    assert first["attributes"] == {"vip_level": "Silver", "points": 1}
    assert contacts[line_id(2)]["name"] == "Last" and contacts[line_id(2)]["attributes"] == {"points": 2}
