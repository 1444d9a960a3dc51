"""The Great Expectations suite on its own (expectations/base.json, the channel's User ID
pattern and the expectations generated from a workspace), and with the normalisers."""
import dataclasses

import pandas as pd
import pytest

from contact_import import validation
from contact_import.channels import CHANNELS
from contact_import.workspaces import Attribute

ATTRS = [Attribute("vip_level", "VIP Level", "select", ("Gold", "Silver")),
         Attribute("points", "Points", "number", None),
         Attribute("since", "Since", "date", None),
         Attribute("opt_in", "Opt-in", "boolean", None),
         Attribute("note", "Note", "text", None)]
HEADERS = {"user_id": "LINE User ID", "name": "Name", "gender": "Gender", "attr:vip_level": "VIP Level",
           "attr:points": "Points", "attr:since": "Since", "attr:opt_in": "Opt-in", "attr:note": "Note",
           "binding_teammate": "Binding Teammate", "store_code": "Store Location Code"}


def test_channel_suite_and_workspace_expectations_report_rows_by_file_line():
    frame = pd.DataFrame({
        "user_id": ["U" + "a" * 32, "U" + "b" * 32, "bad", "U" + "a" * 32],
        "name": ["Amy", "名" * 256, None, "x" * 255],
        "attr:note": ["ok", "x" * 1001, None, "名" * 1000],
        "binding_teammate": ["AMY@shop.example", "UNASSIGNED", "eve@shop.example", None],
        "store_code": ["S001", None, "S404", None],
    }, index=[2, 3, 5, 6], dtype=object)
    generated = validation.workspace_expectations(ATTRS, ["amy@shop.example"], ["S001"])
    issues = validation.run_suite(frame, CHANNELS["line"], HEADERS, generated)
    found = sorted((i.row, i.column, i.code) for i in issues)
    assert found == [
        (3, "Name", "value_too_long"),
        (3, "Note", "value_too_long"),
        (5, "Binding Teammate", "teammate_not_found"),
        (5, "LINE User ID", "invalid_user_id"),
        (5, "Store Location Code", "store_not_found"),
        (6, "LINE User ID", "duplicate_user_id"),
    ]
    messages = {i.column: i.message() for i in issues if i.row == 3}
    assert messages == {"Name": "The value is longer than 255 characters.",
                        "Note": "The value is longer than 1000 characters."}


@pytest.mark.parametrize("channel", CHANNELS.values(), ids=CHANNELS)
def test_every_channel_gets_the_base_suite_with_its_own_user_id_pattern(channel):
    spec = validation.suite_spec(channel)
    assert spec["name"] == channel.name
    assert [e["meta"]["code"] for e in spec["expectations"]] == [
        "missing_user_id", "invalid_user_id", "duplicate_user_id", "value_too_long"]
    frame = pd.DataFrame({"user_id": [*channel.example_user_ids, "not an id!", None]}, index=[2, 3, 4, 5],
                         dtype=object)
    issues = validation.run_suite(frame, channel, {"user_id": channel.user_id_header})
    assert sorted((i.row, i.code) for i in issues) == [(4, "invalid_user_id"), (5, "missing_user_id")]
    invalid = next(i for i in issues if i.code == "invalid_user_id")
    assert invalid.message() == f"'not an id!' is not a valid {channel.label} User ID."


def test_a_new_channel_needs_no_suite_file():
    viber = dataclasses.replace(CHANNELS["line"], name="viber", label="Viber", user_id_pattern=r"v[0-9]{3}")
    frame = pd.DataFrame({"user_id": ["v123", "U" + "a" * 32]}, index=[2, 3], dtype=object)
    issues = validation.run_suite(frame, viber, {"user_id": "Viber User ID"})
    assert [(i.row, i.code, i.params["channel"]) for i in issues] == [(3, "invalid_user_id", "Viber")]


def test_expectations_on_columns_the_file_lacks_are_left_out():
    frame = pd.DataFrame({"user_id": ["U" + "a" * 32]}, index=[2], dtype=object)
    generated = validation.workspace_expectations(ATTRS, None, None)
    assert validation.run_suite(frame, CHANNELS["line"], {"user_id": "LINE User ID"}, generated) == []


def test_normalisers_and_suite_together_report_each_bad_cell_once():
    frame = pd.DataFrame({
        "user_id": ["U" + "a" * 32, "U" + "b" * 32, "bad", "U" + "a" * 32],
        "gender": ["Male", "女", "robot", None],
        "attr:vip_level": ["gold", "Bronze", None, None],
        "attr:points": ["12.5", "-3", "1e5", None],
        "attr:since": ["2020/1/2", "2020-01-02", "2020-01/02", None],
        "attr:opt_in": ["是", "yes", "maybe", "y"],
        "attr:note": ["ok", "x" * 1001, None, None],
        "binding_teammate": ["AMY@shop.example", "UNASSIGNED", "eve@shop.example", None],
        "store_code": ["S001", None, "S404", None],
    }, index=[2, 3, 5, 6], dtype=object)
    channel = CHANNELS["line"]
    normalised, issues = validation.Normaliser(channel, ATTRS, "TW").normalise(frame, HEADERS)
    generated = validation.workspace_expectations(ATTRS, ["amy@shop.example"], ["S001"])
    issues = validation.first_per_cell(issues + validation.run_suite(frame, channel, HEADERS, generated))
    assert sorted((i.row, i.column, i.code) for i in issues) == [
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
    assert normalised.loc[2, "attributes"] == '{"vip_level": "Gold", "points": 12.5, "since": "2020-01-02", ' \
                                              '"opt_in": true, "note": "ok"}'
    assert normalised.loc[6, "attributes"] == '{"opt_in": true}'


def test_a_user_id_off_pattern_and_repeated_is_reported_as_invalid():
    frame = pd.DataFrame({"user_id": ["bad", "bad"]}, index=[2, 3], dtype=object)
    issues = validation.first_per_cell(validation.run_suite(frame, CHANNELS["line"], {"user_id": "LINE User ID"}))
    assert [(i.row, i.code) for i in issues] == [(2, "invalid_user_id"), (3, "invalid_user_id")]


def test_one_error_per_cell_keeps_the_first():
    from contact_import.errors import Issue

    issues = [Issue("phone_scientific_notation", 3, "Phone"), Issue("invalid_phone", 3, "Phone"),
              Issue("invalid_email", 3, "Email"), Issue("profile_shared", 3, "email", params={"other_row": 2}),
              Issue("file_empty")]
    assert [i.code for i in validation.first_per_cell(issues)] == [
        "phone_scientific_notation", "invalid_email", "profile_shared", "file_empty"]
