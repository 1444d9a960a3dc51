"""The import option "complete local numbers with the workspace's region": local numbers
are completed and listed as phone_completed warnings, never silently; off (the default),
they reject the file; numbers the region does not make possible stay errors."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from contact_import import db, imports, intake, statuses, workspaces
from tests.helpers import LINE_HEADER, ctx, exported, line_id, run_stages, write_csv

LOCAL_ROWS = [
    f"{line_id(1)},Amy,,0912 345 678,,,,,,,",  # written the Taiwanese way
    f"{line_id(2)},Ben,,886922334455,,,,,,,",  # already international
    f"{line_id(3)},Carol,,912000111,,,,,,,",  # a number cell that dropped the 0 of 0912000111
]


def _warnings_report(record: dict) -> list[dict]:
    with (Path(record["work_dir"]) / "warnings.csv").open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def test_local_numbers_reject_the_file_by_default(cdp_url, demo_workspace, tmp_path):
    record = run_stages(cdp_url, write_csv(tmp_path / "local.csv", LINE_HEADER, LOCAL_ROWS))
    assert record["status"] == statuses.VALIDATION_FAILED
    assert record["message"] and "phone_not_international" in record["message"]
    assert exported(cdp_url) == {}


def test_the_option_completes_them_and_lists_each_in_the_warnings_report(cdp_url, demo_workspace, tmp_path):
    f = write_csv(tmp_path / "local.csv", LINE_HEADER, LOCAL_ROWS)
    record = run_stages(cdp_url, f, complete_local_phones=True)
    assert record["status"] == statuses.COMPLETED and record["complete_local_phones"] is True
    assert record["warnings"] == {"phone_completed": 2}
    contacts = exported(cdp_url)
    assert [contacts[line_id(n)]["phone"] for n in (1, 2, 3)] == ["886912345678", "886922334455", "886912000111"]
    report = _warnings_report(record)
    assert [(r["row"], r["column"], r["value"], r["code"]) for r in report] == [
        ("2", "Phone", "0912 345 678", "phone_completed"), ("4", "Phone", "912000111", "phone_completed")]
    assert "886912345678" in report[0]["message"]

    # Imported again, nothing changes, and the warnings are reported again: a completed row
    # is never left out as unchanged, so every import says what it completed.
    again = run_stages(cdp_url, f, complete_local_phones=True)
    assert again["status"] == statuses.COMPLETED
    assert again["result"]["unchanged"] == 3 and again["result"]["updated"] == 0
    assert again["warnings"] == {"phone_completed": 2}
    assert [r["row"] for r in _warnings_report(again)] == ["2", "4"]
    assert exported(cdp_url) == contacts


def test_the_preview_and_the_upsert_warnings_add_up(cdp_url, demo_workspace, tmp_path):
    """With approval the report the approver sees lists the completed numbers beside the
    preview's own warnings; the import's report keeps both."""
    f = write_csv(tmp_path / "both.csv", LINE_HEADER, [
        f"{line_id(1)},Amy,same@example.com,0912 345 678,,,,,,,",
        f"{line_id(2)},Ben,same@example.com,,,,,,,,",
    ])
    record = run_stages(cdp_url, f, complete_local_phones=True, require_approval=True)
    assert record["status"] == statuses.COMPLETED
    assert record["warnings"] == {"phone_completed": 1, "profile_shared": 1}
    assert sorted(r["code"] for r in _warnings_report(record)) == ["phone_completed", "profile_shared"]


def test_numbers_the_region_does_not_make_possible_stay_errors(cdp_url, demo_workspace, tmp_path):
    f = write_csv(tmp_path / "short.csv", LINE_HEADER, [
        f"{line_id(1)},Amy,,0912 345 678,,,,,,,",
        f"{line_id(2)},Ben,,0912,,,,,,,",
    ])
    record = run_stages(cdp_url, f, complete_local_phones=True)
    assert record["status"] == statuses.VALIDATION_FAILED
    assert record["errors"] == 1 and "phone_not_international" in record["message"]
    assert exported(cdp_url) == {}


def test_a_workspace_without_a_region_refuses_the_option(cdp_url, demo_workspace, tmp_path):
    with db.transaction(cdp_url) as conn:
        workspaces.apply(conn, {"workspace": "abroad", "name": "No region"})
    f = write_csv(tmp_path / "local.csv", LINE_HEADER, LOCAL_ROWS)
    with pytest.raises(ValueError, match="no default_region"):
        intake.create_import(ctx(cdp_url), workspace="abroad", channel="line", tag_mode="append", file=str(f),
                             complete_local_phones=True)
    with db.transaction(cdp_url) as conn:
        assert imports.count_imports(conn) == 0


# ---------------------------------------------------------------- through the upload API

from tests.helpers import run_recorded, upload  # noqa: E402
from tests.integration.test_plugin_routes import API, airflow, api, stored_folders  # noqa: E402,F401 (fixtures)


def test_the_upload_api_takes_the_option_and_serves_the_completed_numbers_report(api, airflow, cdp_url):  # noqa: F811
    content = ("\n".join([LINE_HEADER, *LOCAL_ROWS]) + "\n").encode()
    created = upload(api, content, complete_local_phones="true")
    assert created.status_code == 202, created.text
    assert created.json()["complete_local_phones"] is True
    (conf,) = airflow.triggered
    assert conf["complete_local_phones"] is True  # the DAG run's params carry it
    run_recorded(cdp_url, created.json()["id"])
    shown = api.get(f"{API}/imports/{created.json()['id']}").json()
    assert shown["status"] == "completed" and shown["warnings"] == {"phone_completed": 2}
    report = api.get(shown["warnings_report"])
    assert report.status_code == 200
    rows = list(csv.DictReader(report.text.lstrip("\ufeff").splitlines()))
    assert [(r["row"], r["code"]) for r in rows] == [("2", "phone_completed"), ("4", "phone_completed")]
    # without the option the same file is taken at upload (rows are the DAG's to judge) and fails there
    plain = upload(api, content)
    assert plain.status_code == 202 and plain.json()["complete_local_phones"] is False
    assert run_recorded(cdp_url, plain.json()["id"])["status"] == statuses.VALIDATION_FAILED


def test_the_upload_api_refuses_the_option_for_a_workspace_without_a_region(api, airflow, cdp_url):  # noqa: F811
    with db.transaction(cdp_url) as conn:
        workspaces.apply(conn, {"workspace": "abroad", "name": "No region"})
    before = stored_folders(cdp_url)
    answer = upload(api, ("\n".join([LINE_HEADER, *LOCAL_ROWS]) + "\n").encode(), workspace="abroad",
                    complete_local_phones="true")
    assert answer.status_code == 422 and "no default_region" in answer.json()["detail"]
    assert stored_folders(cdp_url) == before and airflow.triggered == []
