"""The contact-import command, called as a user would (in-process main(), real database)."""
import csv
import io
import json

import pytest

from contact_import import cli
from tests.helpers import EXAMPLES, LINE_HEADER, line_id, run_stages, table_counts, write_csv


def run(capsys, *args) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_template_has_the_channel_header_workspace_attributes_and_binding(capsys, cdp_url, demo_workspace):
    code, out, _ = run(capsys, "--db", cdp_url, "template", "line", "--workspace", "demo")
    assert code == 0
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == LINE_HEADER.split(",")
    assert len(rows) == 3
    _, overwrite, _ = run(capsys, "--db", cdp_url, "template", "line", "--tag-mode", "overwrite")
    assert overwrite != out
    _, facebook, _ = run(capsys, "template", "facebook")
    assert facebook.splitlines()[0].startswith("Facebook User ID,") and "Binding" not in facebook


def test_validate_a_valid_file_prints_the_preview_and_writes_nothing(capsys, cdp_url, demo_workspace):
    before = table_counts(cdp_url)
    code, out, _ = run(capsys, "validate", EXAMPLES / "line-contacts.csv", "--workspace", "demo",
                       "--channel", "line", "--json", "--db", cdp_url)
    assert code == 0
    result = json.loads(out)
    assert result["status"] == "valid" and result["rows"] == 6 and result["errors"] == 0
    assert result["encoding"] == "utf-8" and result["delimiter"] == ","
    assert result["preview"]["created"] == 6 and result["preview"]["bound"] == 3
    assert table_counts(cdp_url) == before


def test_validate_an_invalid_file_exits_1_with_a_report(capsys, cdp_url, demo_workspace, tmp_path):
    bad = write_csv(tmp_path / "bad.csv", LINE_HEADER, [
        f"{line_id(1)},A,not-an-email,0911223344,male,2999-01-01,,,,Platinum,",
        f"{line_id(1)},B,,,,,,,,,",
    ])
    code, out, _ = run(capsys, "--db", cdp_url, "validate", bad, "--workspace", "demo", "--channel", "line",
                       "--json", "--report-dir", tmp_path / "reports", "--lang", "zh-TW")
    assert code == 1
    result = json.loads(out)
    assert result["errors_by_code"] == {"duplicate_user_id": 1, "invalid_attribute_value": 1, "invalid_date": 1,
                                        "invalid_email": 1, "phone_not_international": 1}
    report = list(csv.DictReader(open(result["error_report"], encoding="utf-8-sig")))
    assert [(r["row"], r["code"]) for r in report] == [
        ("2", "invalid_date"), ("2", "invalid_email"), ("2", "phone_not_international"),
        ("2", "invalid_attribute_value"), ("3", "duplicate_user_id")]  # by row, then column
    docs = open(result["data_docs"], encoding="utf-8").read()  # GX's page beside the report
    assert "<html" in docs and "user_id" in docs
    phone = next(r for r in report if r["code"] == "phone_not_international")
    assert "886911223344" in phone["message"] and "國碼" in phone["message"]


def test_status_and_export(capsys, cdp_url, demo_workspace):
    record = run_stages(cdp_url, EXAMPLES / "line-contacts.csv")
    code, out, _ = run(capsys, "--db", cdp_url, "status", record["id"], "--json")
    assert code == 0 and json.loads(out)["status"] == "completed"
    code, out, _ = run(capsys, "--db", cdp_url, "export", "--workspace", "demo", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 6 and set(rows[0]) >= {"user_id", "tags", "binding", "attributes"}
    code, out, _ = run(capsys, "--db", cdp_url, "cancel", record["id"])
    assert code == 1 and "already completed" in out


@pytest.mark.parametrize("args, message", [
    (["status", "--workspace", "nope"], "no workspace 'nope'"),
    (["validate", "missing.csv", "--workspace", "demo", "--channel", "line"], "no such file"),
    (["workspace", "apply", "missing.yaml"], "missing.yaml"),
    (["import", "missing.csv", "--workspace", "demo", "--channel", "line"], "no such file"),
])
def test_usage_errors_exit_2_with_one_line(capsys, cdp_url, demo_workspace, args, message):
    code, out, err = run(capsys, "--db", cdp_url, *args)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_require_approval_needs_airflow_so_a_local_import_refuses_it(capsys, cdp_url, demo_workspace):
    code, _, err = run(capsys, "--db", cdp_url, "import", EXAMPLES / "line-contacts.csv", "--workspace", "demo",
                       "--channel", "line", "--require-approval")
    assert code == 2 and "approval" in err
    assert table_counts(cdp_url)["imports"] == 0


def test_max_errors_caps_the_report_not_the_counts(capsys, cdp_url, demo_workspace, tmp_path):
    bad = write_csv(tmp_path / "bad.csv", LINE_HEADER, [f"U{n},,,,,,,,,," for n in range(50)])
    code, out, _ = run(capsys, "--db", cdp_url, "validate", bad, "--workspace", "demo", "--channel", "line",
                       "--json", "--max-errors", 10)
    result = json.loads(out)
    assert code == 1 and result["errors"] == 50 and result["errors_by_code"] == {"invalid_user_id": 50}
    rows = list(csv.DictReader(open(result["error_report"], encoding="utf-8-sig")))
    assert [int(r["row"]) for r in rows] == list(range(2, 12))


def test_shared_profiles_are_listed_row_by_row_in_a_warnings_report(capsys, cdp_url, demo_workspace, tmp_path):
    f = write_csv(tmp_path / "shared.csv", LINE_HEADER, [
        f"{line_id(1)},A,same@example.com,,,,,,,,", f"{line_id(2)},B,other@example.com,,,,,,,,",
        f"{line_id(3)},C,same@example.com,,,,,,,,"])
    code, out, _ = run(capsys, "--db", cdp_url, "validate", f, "--workspace", "demo", "--channel", "line", "--json")
    result = json.loads(out)
    assert code == 0 and result["warnings"] == {"profile_shared": 1} and result["preview"]["customers_created"] == 2
    rows = list(csv.DictReader(open(result["warnings_report"], encoding="utf-8-sig")))
    assert [(r["row"], r["code"], r["value"]) for r in rows] == [("4", "profile_shared", "same@example.com")]
    assert "row 2" in rows[0]["message"]
