"""One owner for every column rule: the Great Expectations suite or a normaliser, never both.

Tricky values of every column and custom attribute type go through both engines for
real: validation.Normaliser and validation.run_suite (Great Expectations itself, on the
suite expectations/base.json plus the channel's User ID pattern and the workspace's
generated expectations). A column both engines judge must get the same verdict from
both on every value; and each column must be judged by the one engine that owns it,
giving the report code listed here. (binding.check needs the database: not run here.)
"""
from __future__ import annotations

import pandas as pd
import pytest

from contact_import import validation
from contact_import.channels import CHANNELS
from contact_import.workspaces import Attribute

CHANNEL = CHANNELS["line"]
ATTRS = [Attribute("tier", "Tier", "select", ("Gold", "Silver", "Straße")),
         Attribute("points", "Points", "number", None),
         Attribute("since", "Since", "date", None),
         Attribute("opt_in", "Opt-in", "boolean", None),
         Attribute("note", "Note", "text", None)]
TEAMMATES = ["amy@shop.example", "Bob@Shop.example"]
STORES = ["S001", "s002"]
GX, NORMALISER = "Great Expectations", "the normaliser"
OK = None


def _email(length: int) -> str:
    domain = ".".join(["b" * 61] * 3) + ".com"  # 189 characters
    return "a" * (length - len(domain) - 1) + "@" + domain


# column -> (its owner, {value: the code its cell gets, OK when valid})
CORPUS: dict[str, tuple[str, dict]] = {
    "user_id": (GX, {
        "U" + "0" * 32: OK, "U" + "a1" * 16: OK, None: "missing_user_id", "U" + "A" * 32: "invalid_user_id",
        "u" + "0" * 32: "invalid_user_id", "U" + "0" * 31: "invalid_user_id", "U" + "0" * 33: "invalid_user_id",
        "Ｕ" + "0" * 32: "invalid_user_id", "U" + "０" * 32: "invalid_user_id", "1.5e3": "invalid_user_id",
    }),
    "name": (GX, {
        "Amy": OK, "x" * 255: OK, "x" * 256: "value_too_long", "名" * 255: OK, "名" * 256: "value_too_long",
        "😀" * 255: OK, "=1+1": OK, "y": OK,
    }),
    "email": (NORMALISER, {
        "ming@example.com": OK, "Ming.Wang+vip@Example.COM": OK, "用户@例子.公司": OK, "ming@example": "invalid_email",
        "ming@@example.com": "invalid_email", "mi ng@example.com": "invalid_email", "x@localhost": "invalid_email",
        '"a b"@example.com': "invalid_email", "x@[127.0.0.1]": "invalid_email", "ming@example..com": "invalid_email",
        "a" * 64 + "@example.com": OK,
        _email(254): OK, _email(255): "value_too_long", "y": "invalid_email",
    }),
    "phone": (NORMALISER, {
        "+886 912 345 678": OK, "886-912-345-678": OK, "(886) 912.345.678": OK, "+886 912": "invalid_phone",
        "８８６９１２３４５６７８": "invalid_phone", "8.86912E+11": "phone_scientific_notation",
        "1.5e3": "phone_scientific_notation", "0912345678": "phone_not_international",
        "886912345678 ext 1": "invalid_phone", "+": "invalid_phone", "1" * 16: "invalid_phone",
        "999123456789": "invalid_phone", "y": "invalid_phone",
    }),
    "gender": (NORMALISER, {
        "male": OK, "M": OK, "Female": OK, "FEMALE": OK, "f": OK, "女": OK, "男": OK, "其他": OK, "OTHER": OK,
        "ｍａｌｅ": "invalid_gender", "man": "invalid_gender", "o": "invalid_gender", "男性": "invalid_gender",
        "y": "invalid_gender",
    }),
    "birthday": (NORMALISER, {
        "1990-01-05": OK, "1990/1/5": OK, "2024-02-29": OK, "2023-02-29": "invalid_date", "2024-02-30": "invalid_date",
        "1990-13-01": "invalid_date", "1990-01/05": "invalid_date", "2999-01-01": "invalid_date",
        "1899-12-31": "invalid_date", "１９９０-01-05": "invalid_date", "90-01-05": "invalid_date",
        "19900105": "invalid_date", "1990-01-05 00:00": "invalid_date",
    }),
    "tags": (NORMALISER, {
        "VIP, Taipei": OK, "x" * 50: OK, "x" * 51: "value_too_long", "a，" + "名" * 51: "value_too_long",
        ", ，": OK, "y": OK,
    }),
    "attr:tier": (NORMALISER, {
        "Gold": OK, "gold": OK, "GOLD": OK, "gOLD": OK, "Straße": OK, "STRASSE": OK, "strasse": OK,
        "Bronze": "invalid_attribute_value", "Gold,Silver": "invalid_attribute_value",
        "Ｇｏｌｄ": "invalid_attribute_value", "Go": "invalid_attribute_value", "y": "invalid_attribute_value",
    }),
    "attr:points": (NORMALISER, {
        "12": OK, "-3": OK, "+3": OK, "12.5": OK, "0.25": OK, "1.5e3": "invalid_attribute_value",
        "1,234": "invalid_attribute_value", "１２": "invalid_attribute_value", "nan": "invalid_attribute_value",
        "inf": "invalid_attribute_value", ".5": "invalid_attribute_value", "12.": "invalid_attribute_value",
        "9" * 400 + ".5": "invalid_attribute_value", "0x10": "invalid_attribute_value",
        "y": "invalid_attribute_value",
    }),
    "attr:since": (NORMALISER, {
        "2024-02-29": OK, "2024/2/29": OK, "2024-02-30": "invalid_attribute_value",
        "2999-01-01": "invalid_attribute_value", "2024-02/29": "invalid_attribute_value",
        "２０２４-02-29": "invalid_attribute_value", "1899-12-31": "invalid_attribute_value",
    }),
    "attr:opt_in": (NORMALISER, {
        "y": OK, "N": OK, "Yes": OK, "TRUE": OK, "false": OK, "1": OK, "0": OK, "是": OK, "否": OK,
        "maybe": "invalid_attribute_value", "t": "invalid_attribute_value", "1.0": "invalid_attribute_value",
        "１": "invalid_attribute_value", "yes!": "invalid_attribute_value",
    }),
    "attr:note": (GX, {
        "x" * 1000: OK, "x" * 1001: "value_too_long", "名" * 1000: OK, "名" * 1001: "value_too_long", "=cmd": OK,
        "y": OK,
    }),
    "binding_teammate": (GX, {
        "amy@shop.example": OK, "AMY@SHOP.EXAMPLE": OK, "bob@shop.example": OK, "UNASSIGNED": OK, "unassigned": OK,
        "eve@shop.example": "teammate_not_found", "amyXshop.example": "teammate_not_found",
        "amy@shopXexample": "teammate_not_found", "amy@shop.example|x": "teammate_not_found",
        "y": "teammate_not_found",
    }),
    "store_code": (GX, {
        "S001": OK, "s002": OK, "s001": "store_not_found", "S404": "store_not_found", "y": "store_not_found",
    }),
}
FIRST_ROW = 2


def _frame() -> pd.DataFrame:
    """Column c's k-th corpus value on row FIRST_ROW + k; a unique valid User ID where the
    user_id corpus has ended, nothing in the other columns."""
    rows = max(len(values) for _, values in CORPUS.values())
    columns = {}
    for column, (_, values) in CORPUS.items():
        cells = list(values)
        pad = ([f"U{n:032x}" for n in range(len(cells), rows)] if column == "user_id"
               else [None] * (rows - len(cells)))
        columns[column] = cells + pad
    return pd.DataFrame(columns, index=range(FIRST_ROW, FIRST_ROW + rows), dtype=object)


def judge(extra_expectations: list[dict] = ()) -> tuple[dict, set[str]]:
    """Both engines on the corpus: engine -> column -> corpus value -> the code the engine
    gives its cell (OK when none), and the columns the suite has expectations on."""
    frame = _frame()
    headers = {column: column for column in frame.columns}
    _, normaliser_issues = validation.Normaliser(CHANNEL, ATTRS, "TW").normalise(frame, headers)
    generated = [*validation.workspace_expectations(ATTRS, TEAMMATES, STORES), *extra_expectations]
    gx_issues = validation.run_suite(frame, CHANNEL, headers, generated)
    verdicts = {}
    for engine, issues in ((NORMALISER, normaliser_issues), (GX, gx_issues)):
        by_cell = {(i.row, i.column): i.code for i in validation.first_per_cell(issues)}
        verdicts[engine] = {column: {value: by_cell.get((FIRST_ROW + k, column)) for k, value in enumerate(values)}
                            for column, (_, values) in CORPUS.items()}
    suite = validation.suite_spec(CHANNEL, generated)
    return verdicts, {e["kwargs"]["column"] for e in suite["expectations"]}


def judges(run: tuple[dict, set[str]], column: str) -> set[str]:
    """The engines with a rule on the column: the suite when it has an expectation on it,
    the normaliser when it reported any of its values."""
    verdicts, suite_columns = run
    found = {engine for engine in verdicts if any(verdicts[engine][column].values())}
    return found | {GX} if column in suite_columns else found


def disagreements(run: tuple[dict, set[str]]) -> dict[str, list]:
    """column -> the values (labelled) one engine accepts and the other refuses, for each
    column both engines judge."""
    verdicts, _ = run
    out = {}
    for column, (_, values) in CORPUS.items():
        if judges(run, column) == {GX, NORMALISER}:
            differ = [(label(value), {engine: verdicts[engine][column][value] for engine in verdicts})
                      for value in values
                      if (verdicts[GX][column][value] is OK) != (verdicts[NORMALISER][column][value] is OK)]
            if differ:
                out[column] = differ
    return out


def label(value: str | None) -> str | None:
    """A value short enough to read in a failure."""
    return value if value is None or len(value) <= 24 else f"{value[:12]}…({len(value)} characters)"


@pytest.fixture(scope="module")
def run():
    return judge()


def test_the_engines_never_disagree_on_a_value(run):
    assert disagreements(run) == {}


@pytest.mark.parametrize("column", CORPUS)
def test_each_column_is_judged_by_its_one_owner_with_the_reported_code(run, column):
    owner, expected = CORPUS[column]
    verdicts, _ = run
    assert judges(run, column) == {owner}
    assert {label(v): code for v, code in verdicts[owner][column].items()} == {
        label(v): code for v, code in expected.items()}
    other = NORMALISER if owner == GX else GX
    assert set(verdicts[other][column].values()) == {OK}


def test_a_rule_written_in_both_engines_is_caught():
    """The normalisers' select, number and boolean rules copied into the suite as regular
    expressions: (?i) is not casefold, and a regex cannot see that 9…9.5 overflows a float.
    The copy that agrees on every value is still a second owner."""
    copies = [_regex("attr:tier", "^(?i:Gold|Silver|Straße)$"),
              _regex("attr:points", r"^[+-]?[0-9]+(?:\.[0-9]+)?$"),
              _regex("attr:opt_in", "^(?i:true|false|yes|no|y|n|1|0|是|否)$")]
    run = judge(copies)
    found = disagreements(run)
    assert {column: [value for value, _ in differ] for column, differ in found.items()} == {
        "attr:tier": ["STRASSE", "strasse"], "attr:points": [label("9" * 400 + ".5")]}
    assert found["attr:points"][0][1] == {NORMALISER: "invalid_attribute_value", GX: OK}
    assert judges(run, "attr:opt_in") == {GX, NORMALISER}


def _regex(column: str, regex: str) -> dict:
    return {"type": "expect_column_values_to_match_regex", "kwargs": {"column": column, "regex": regex},
            "meta": {"code": "invalid_attribute_value"}}
