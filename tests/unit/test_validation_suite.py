"""The Great Expectations suites on their own: the JSON suite of a channel plus the
expectations generated from a workspace, on a mapped frame."""
import pandas as pd

from contact_import import validation
from contact_import.channels import CHANNELS
from contact_import.workspaces import Attribute

ATTRS = [Attribute("vip_level", "VIP Level", "select", ("Gold", "Silver")),
         Attribute("points", "Points", "number", None),
         Attribute("since", "Since", "date", None),
         Attribute("opt_in", "Opt-in", "boolean", None),
         Attribute("note", "Note", "text", None)]
HEADERS = {"user_id": "LINE User ID", "gender": "Gender", "attr:vip_level": "VIP Level", "attr:points": "Points",
           "attr:since": "Since", "attr:opt_in": "Opt-in", "attr:note": "Note", "binding_teammate": "Binding Teammate",
           "store_code": "Store Location Code"}


def test_channel_suite_and_workspace_expectations_report_rows_by_file_line():
    frame = pd.DataFrame({
        "user_id": ["U" + "a" * 32, "U" + "b" * 32, "bad", "U" + "a" * 32],
        "gender": ["Male", "女", "robot", None],
        "attr:vip_level": ["gold", "Bronze", None, None],
        "attr:points": ["12.5", "-3", "1e5", None],
        "attr:since": ["2020/1/2", "2020-01-02", "2020-01/02", None],
        "attr:opt_in": ["是", "yes", "maybe", None],
        "attr:note": ["ok", "x" * 1001, None, None],
        "binding_teammate": ["AMY@shop.example", "UNASSIGNED", "eve@shop.example", None],
        "store_code": ["S001", None, "S404", None],
    }, index=[2, 3, 5, 6], dtype=object)
    generated = validation.workspace_expectations(ATTRS, ["amy@shop.example"], ["S001"])
    issues = validation.run_suite(frame, CHANNELS["line"], HEADERS, generated)
    found = sorted((i.row, i.column, i.code) for i in issues)
    assert found == [
        (3, "Note", "value_too_long"),
        (3, "VIP Level", "invalid_attribute_value"),
        (5, "Binding Teammate", "teammate_not_found"),
        (5, "Gender", "invalid_gender"),
        (5, "LINE User ID", "invalid_user_id"),
        (5, "Opt-in", "invalid_attribute_value"),
        (5, "Points", "invalid_attribute_value"),
        (5, "Since", "invalid_attribute_value"),
        (5, "Store Location Code", "store_not_found"),
        (6, "LINE User ID", "duplicate_user_id"),
    ]
    vip = next(i for i in issues if i.column == "VIP Level")
    assert vip.message() == "'Bronze' is not a valid select for 'VIP Level' (one of: Gold, Silver)."


def test_expectations_on_columns_the_file_lacks_are_left_out():
    frame = pd.DataFrame({"user_id": ["U" + "a" * 32]}, index=[2], dtype=object)
    generated = validation.workspace_expectations(ATTRS, None, None)
    assert validation.run_suite(frame, CHANNELS["line"], {"user_id": "LINE User ID"}, generated) == []


def test_one_error_per_cell_keeps_the_first():
    from contact_import.errors import Issue

    issues = [Issue("phone_scientific_notation", 3, "Phone"), Issue("invalid_phone", 3, "Phone"),
              Issue("invalid_email", 3, "Email"), Issue("profile_shared", 3, "email", params={"other_row": 2}),
              Issue("file_empty")]
    assert [i.code for i in validation.first_per_cell(issues)] == [
        "phone_scientific_notation", "invalid_email", "profile_shared", "file_empty"]
