"""Every row-level error code of docs/design.md#error-codes: one small file each, asserting code, row and column.

(File-level codes — encodings, not_a_table, malformed_csv, columns — are in test_corpus.py.)
"""
import csv
import json

import pytest

from contact_import import cli, db, workspaces
from tests.helpers import EXAMPLES, LINE_HEADER, line_id, table_counts, write_csv

GOOD = f"{line_id(1)},Amy,amy@example.com,886911000001,female,1990-01-01,VIP,,,Gold,10"


def row(**cells) -> str:
    values = dict(zip(LINE_HEADER.split(","), [line_id(2), "Bob", "bob@example.com", "886911000002", "male",
                                                "1991-02-03", "", "", "", "", ""]))
    values.update({k.replace("_", " "): v for k, v in cells.items()})
    return ",".join(values.values())


def validate(capsys, cdp_url, tmp_path, lines, header=LINE_HEADER, channel="line", workspace="demo"):
    path = write_csv(tmp_path / "file.csv", header, lines)
    code = cli.main(["--db", cdp_url, "validate", str(path), "--workspace", workspace, "--channel", channel,
                     "--json", "--report-dir", str(tmp_path)])
    result = json.loads(capsys.readouterr().out)
    assert code == (1 if result["errors"] else 0)
    report = list(csv.DictReader(open(result["error_report"], encoding="utf-8-sig"))) if result["errors"] else []
    return result, [(int(r["row"]), r["column"], r["code"]) for r in report]


@pytest.mark.parametrize("cells, expected", [
    ({"LINE User ID": ""}, ("LINE User ID", "missing_user_id")),
    ({"LINE User ID": line_id(1)}, ("LINE User ID", "duplicate_user_id")),
    ({"Email": "bob@@example"}, ("Email", "invalid_email")),
    ({"Phone": "12"}, ("Phone", "invalid_phone")),
    ({"Phone": "0911223344"}, ("Phone", "phone_not_international")),
    ({"Phone": "8.86911E+11"}, ("Phone", "phone_scientific_notation")),
    ({"Gender": "unknown"}, ("Gender", "invalid_gender")),
    ({"Birthday": "2020-02-30"}, ("Birthday", "invalid_date")),
    ({"Birthday": "2999-01-01"}, ("Birthday", "invalid_date")),
    ({"Tags": "x" * 51}, ("Tags", "value_too_long")),
    ({"Name": "名" * 256}, ("Name", "value_too_long")),
    ({"VIP Level": "Platinum"}, ("VIP Level", "invalid_attribute_value")),
    ({"Points": "lots"}, ("Points", "invalid_attribute_value")),
    ({"Binding Teammate": "amy@shop.example"}, ("Store Location Code", "binding_incomplete")),
    ({"Store Location Code": "S001"}, ("Binding Teammate", "binding_incomplete")),
    ({"Binding Teammate": "nobody@shop.example", "Store Location Code": "S001"},
     ("Binding Teammate", "teammate_not_found")),
    ({"Binding Teammate": "carol@shop.example", "Store Location Code": "S001"},
     ("Binding Teammate", "teammate_role_not_bindable")),
    ({"Binding Teammate": "amy@shop.example", "Store Location Code": "S999"},
     ("Store Location Code", "store_not_found")),
    ({"Binding Teammate": "AMY@shop.example", "Store Location Code": "S002"},
     ("Store Location Code", "teammate_not_in_store")),
])
def test_each_row_error_code_names_its_row_and_column(capsys, cdp_url, demo_workspace, tmp_path, cells, expected):
    result, report = validate(capsys, cdp_url, tmp_path, [GOOD, row(**cells)])
    assert report == [(3, *expected)]
    assert result["errors_by_code"] == {expected[1]: 1}


def test_inactive_teammate(capsys, cdp_url, tmp_path):
    spec = workspaces.load_file(EXAMPLES / "demo-workspace.yaml")
    spec["teammates"][0]["active"] = False
    with db.transaction(cdp_url) as conn:
        workspaces.apply(conn, spec)
    _, report = validate(capsys, cdp_url, tmp_path,
                         [GOOD, row(Binding_Teammate="amy@shop.example", Store_Location_Code="S001")])
    assert report == [(3, "Binding Teammate", "teammate_inactive")]


def test_bindings_in_a_workspace_without_omo(capsys, cdp_url, tmp_path):
    spec = workspaces.load_file(EXAMPLES / "demo-workspace.yaml")
    spec["omo"] = False
    with db.transaction(cdp_url) as conn:
        workspaces.apply(conn, spec)
    _, report = validate(capsys, cdp_url, tmp_path,
                         [GOOD, row(Binding_Teammate="amy@shop.example", Store_Location_Code="S001")])
    assert report == [(3, "Binding Teammate", "omo_not_enabled")]


def test_bindings_on_a_channel_without_omo(capsys, cdp_url, demo_workspace, tmp_path):
    header = "Facebook User ID,Name,Binding Teammate,Store Location Code"
    _, report = validate(capsys, cdp_url, tmp_path, ["5512345678901234,Ann,,", "5598765432109876,Ben,amy@shop.example,S001"],
                         header=header, channel="facebook")
    assert report == [(3, "Binding Teammate", "binding_not_supported")]


def test_many_errors_at_once_one_per_cell_sorted_by_row_and_nothing_written(capsys, cdp_url, demo_workspace,
                                                                            tmp_path):
    before = table_counts(cdp_url)
    lines = [GOOD,
             row(Email="nope", Phone="abc", Gender="?", VIP_Level="Diamond"),
             f"{line_id(3)},,,,,,,,,,",
             "Ubad,Bad,,,,,,,,,",
             row(LINE_User_ID=line_id(1), Birthday="1990/13/01")]
    result, report = validate(capsys, cdp_url, tmp_path, lines)
    assert report == [
        (3, "Email", "invalid_email"), (3, "Gender", "invalid_gender"), (3, "Phone", "invalid_phone"),
        (3, "VIP Level", "invalid_attribute_value"),
        (5, "LINE User ID", "invalid_user_id"),
        (6, "Birthday", "invalid_date"), (6, "LINE User ID", "duplicate_user_id"),
    ]
    assert result["errors"] == 7
    assert table_counts(cdp_url) == before


def test_a_header_written_twice_is_a_duplicate_column(capsys, cdp_url, demo_workspace, tmp_path):
    result, report = validate(capsys, cdp_url, tmp_path, [f"{line_id(1)},A,B"], header="LINE User ID,Name,Name")
    assert report == [(1, "Name", "duplicate_column")]


# ---------------------------------------------------------------- workbooks and phones a number cell changed

def validate_file(capsys, cdp_url, tmp_path, path):
    code = cli.main(["--db", cdp_url, "validate", str(path), "--workspace", "demo", "--channel", "line",
                     "--json", "--report-dir", str(tmp_path)])
    result = json.loads(capsys.readouterr().out)
    assert code == (1 if result["errors"] else 0)
    report = list(csv.DictReader(open(result["error_report"], encoding="utf-8-sig"))) if result["errors"] else []
    return result, [(int(r["row"]), r["column"], r["code"], r["message"]) for r in report]


def _padded_xlsx(path):
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["LINE User ID", "Name", "Phone"])
    sheet.append([line_id(1), "Amy", 886911000001])
    sheet.append([line_id(2), "Bob", 912345678])
    sheet["C3"].number_format = "0000000000"  # shown as 0912345678, as typed
    book.save(path)


def _padded_xls(path):
    import xlwt

    book = xlwt.Workbook()
    sheet = book.add_sheet("contacts")
    for c, title in enumerate(["LINE User ID", "Name", "Phone"]):
        sheet.write(0, c, title)
    sheet.write(1, 0, line_id(1)), sheet.write(1, 1, "Amy"), sheet.write(1, 2, 886911000001)
    sheet.write(2, 0, line_id(2)), sheet.write(2, 1, "Bob")
    sheet.write(2, 2, 912345678, xlwt.easyxf(num_format_str="0000000000"))  # a format calamine cannot see
    book.save(path)


@pytest.mark.parametrize("make, name, code", [
    (_padded_xlsx, "book.xlsx", "phone_not_international"),  # read as displayed: 0912345678
    (_padded_xls, "book.xls", "phone_leading_zero_lost"),  # read as 912345678, which is not +91 2345678
])
def test_a_zero_padded_phone_cell_is_never_stored_as_a_foreign_number(capsys, cdp_url, demo_workspace, tmp_path,
                                                                      make, name, code):
    make(tmp_path / name)
    before = table_counts(cdp_url)
    result, report = validate_file(capsys, cdp_url, tmp_path, tmp_path / name)
    assert [r[:3] for r in report] == [(3, "Phone", code)]
    assert "886912345678" in report[0][3]  # the fix, from the workspace's region (TW)
    assert result["encoding"] == name.rpartition(".")[2]
    assert table_counts(cdp_url) == before


def test_a_csv_phone_that_lost_its_leading_zero_is_rejected_unless_written_with_plus(capsys, cdp_url,
                                                                                   demo_workspace, tmp_path):
    result, report = validate(capsys, cdp_url, tmp_path, [GOOD, row(Phone="912345678"),
                                                          row(LINE_User_ID=line_id(3), Phone="+912345678",
                                                              Email="c@example.com")])
    assert report == [(3, "Phone", "phone_leading_zero_lost")]
    assert result["errors_by_code"] == {"phone_leading_zero_lost": 1}


def test_two_exports_glued_together_are_rejected_on_the_line_where_the_second_begins(capsys, cdp_url,
                                                                                   demo_workspace, tmp_path):
    first = "\n".join([LINE_HEADER, GOOD, row(Name="王小明")]) + "\n"
    second = row(LINE_User_ID=line_id(3), Name="陳怡君", Email="c@example.com") + "\n"
    path = tmp_path / "glued.csv"
    path.write_bytes(first.encode("utf-8") + second.encode("big5"))
    result, report = validate_file(capsys, cdp_url, tmp_path, path)
    assert [r[:3] for r in report] == [(4, "", "encoding_undetectable")]
