"""validate: Great Expectations suites plus the cell normalisers, one report.

The suite for a channel lives in expectations/<channel>.json as data; each
expectation's meta.code names the error code its failures get in the report.
The normalisers (normalisation.py) check and convert every cell; their errors and
the suite's land in one list of Issues, sorted by row.
"""
from __future__ import annotations

import csv
import functools
import hashlib
import json
import logging
import os
import re
from pathlib import Path
from string import Template

import numpy as np
import pandas as pd

from . import config, normalisation
from .channels import Channel
from .errors import ERROR, Issue
from .mapping import ATTRIBUTE_PREFIX, USER_ID
from .profiles import fingerprints
from .workspaces import Attribute

REPORT_COLUMNS = ("row", "column", "value", "code", "message")
NORMALISED_COLUMNS = ("row", "user_id", "name", "email", "phone", "gender", "birthday", "tags",
                      "attributes", "binding_teammate", "store_code")
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def load_suite_spec(channel: Channel) -> dict:
    text = (config.expectations_dir() / f"{channel.name}.json").read_text(encoding="utf-8")
    return json.loads(Template(text).safe_substitute(user_id_pattern=channel.user_id_pattern.replace("\\", "\\\\")))


_ATTRIBUTE_PATTERNS = {
    "number": r"[+-]?[0-9]+(?:\.[0-9]+)?",
    "date": r"[0-9]{4}(?:-[0-9]{1,2}-[0-9]{1,2}|/[0-9]{1,2}/[0-9]{1,2})",
    "boolean": r"(?i:true|false|yes|no|y|n|1|0|是|否)",
}


def workspace_expectations(attributes: list[Attribute], teammates: list[str] | None,
                           stores: list[str] | None) -> list[dict]:
    """Expectations generated from the workspace: custom attributes and the OMO set-up.

    teammates / stores are None when the file's bindings are not checked against the
    workspace at all (channel without OMO, workspace without the plan).
    """
    generated = []
    for attr in attributes:
        column = ATTRIBUTE_PREFIX + attr.key
        if attr.type == "text":
            generated.append(_expectation("expect_column_value_lengths_to_be_between", column, "value_too_long",
                                          {"limit": 1000}, max_value=1000))
            continue
        if attr.type == "select":
            pattern = "(?i:" + "|".join(re.escape(o) for o in attr.options or ()) + ")"
            options = f" (one of: {', '.join(attr.options or ())})"
        else:
            pattern, options = _ATTRIBUTE_PATTERNS[attr.type], ""
        generated.append(_expectation("expect_column_values_to_match_regex", column, "invalid_attribute_value",
                                      {"type": attr.type, "options": options}, regex=f"^{pattern}$"))
    if teammates is not None:
        pattern = "|".join(re.escape(e) for e in [*teammates, "UNASSIGNED"])
        generated.append(_expectation("expect_column_values_to_match_regex", "binding_teammate",
                                      "teammate_not_found", {}, regex=f"^(?i:{pattern})$"))
    if stores is not None:
        generated.append(_expectation("expect_column_values_to_be_in_set", "store_code", "store_not_found", {},
                                      value_set=sorted(stores)))
    return generated


def _expectation(kind: str, column: str, code: str, params: dict, **kwargs) -> dict:
    return {"type": kind, "kwargs": {"column": column, **kwargs}, "meta": {"code": code, "params": params}}


@functools.lru_cache(maxsize=1)
def _context():
    """One ephemeral GX context per process: importing GX and creating it costs seconds."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


@functools.lru_cache(maxsize=32)
def _validation_definition(suite_json: str):
    """The suite as GX objects, built once per distinct suite (a workspace's generated
    expectations make each workspace's suite its own)."""
    import great_expectations as gx

    context = _context()
    spec = json.loads(suite_json)
    name = f"{spec['name']}-{hashlib.sha1(suite_json.encode()).hexdigest()[:12]}"
    suite = context.suites.add(gx.ExpectationSuite(name=name, expectations=spec["expectations"]))
    batch = (context.data_sources.add_pandas(name).add_dataframe_asset("rows")
             .add_batch_definition_whole_dataframe("whole_file"))
    return context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))


def run_suite(frame: pd.DataFrame, channel: Channel, headers: dict[str, str],
              generated: list[dict] = (), data_docs: Path | None = None,
              user_ids: "UserIds | None" = None) -> list[Issue]:
    """Run the channel's suite plus `generated` expectations on the mapped frame.

    frame: index = file line, None = empty cell; headers: field -> the file's header,
    which the report names. Expectations on columns the file does not have are left out.
    When an expectation fails and `data_docs` is given, GX's own page of the result is
    written there (the Data Docs that sit beside the error report). `user_ids` carries
    the User IDs of the file's earlier chunks, so uniqueness holds across the file.
    """
    user_ids = user_ids or UserIds()
    spec = load_suite_spec(channel)
    spec["expectations"] = [e for e in [*spec["expectations"], *generated]
                            if e["kwargs"]["column"] in frame.columns or e["kwargs"]["column"] == USER_ID]
    definition = _validation_definition(json.dumps(spec, sort_keys=True, ensure_ascii=False))
    columns = sorted({e["kwargs"]["column"] for e in spec["expectations"]})
    batch = frame.reindex(columns=columns)
    batch.index.name = None  # a named index makes GX report rows as {name: row} dicts
    result = definition.run(batch_parameters={"dataframe": batch},
                            result_format={"result_format": "COMPLETE"})
    if data_docs is not None and not result.success:
        write_data_docs(result, data_docs)
    earlier = ({i.row: i for i in user_ids.check(frame[USER_ID], headers.get(USER_ID, USER_ID))}
               if USER_ID in frame else {})
    issues: list[Issue] = []
    for outcome in result.results:
        if outcome.success:
            continue
        if outcome.exception_info and outcome.exception_info.get("raised_exception"):
            raise RuntimeError(f"expectation {outcome.expectation_config.type} failed to run: "
                               f"{outcome.exception_info.get('exception_message')}")
        meta = outcome.expectation_config.meta or {}
        field_name = outcome.expectation_config.kwargs["column"]
        code, column = meta["code"], headers.get(field_name, field_name)
        rows = outcome.result.get("unexpected_index_list") or []
        values = outcome.result.get("unexpected_list") or []
        if code == "duplicate_user_id":
            # a copy of an earlier chunk's User ID names the file's first row, not the chunk's
            issues.extend(earlier.pop(issue.row, issue) for issue in _duplicates(rows, values, column))
            continue
        issues.extend(Issue(code, int(row), column, "" if value is None else str(value),
                            {"channel": channel.label, **meta.get("params", {})})
                      for row, value in zip(rows, values))
    issues.extend(earlier.values())
    return issues


class UserIds:
    """The first file line of each User ID in the chunks validated so far (by fingerprint)."""

    def __init__(self) -> None:
        self._keys = np.empty(0, dtype="V16")  # sorted
        self._first = np.empty(0, dtype=np.int64)  # file line of each key's first row

    def check(self, ids: pd.Series, column: str) -> list[Issue]:
        """Rows repeating a User ID of an earlier chunk (GX sees one chunk); then remember this chunk's."""
        keys, present = fingerprints(ids)
        keys, rows, values = keys[present], ids.index.to_numpy()[present], ids.to_numpy(dtype=object)[present]
        issues: list[Issue] = []
        seen = np.zeros(len(keys), dtype=bool)
        if len(self._keys):
            at = np.minimum(np.searchsorted(self._keys, keys), len(self._keys) - 1)
            seen = self._keys[at] == keys
            issues = [Issue("duplicate_user_id", int(row), column, value, {"first_row": int(first)})
                      for row, value, first in zip(rows[seen], values[seen], self._first[at[seen]])]
        new_keys, first = np.unique(keys[~seen], return_index=True)
        merged = np.concatenate([self._keys, new_keys])
        order = np.argsort(merged, kind="stable")
        self._keys = merged[order]
        self._first = np.concatenate([self._first, rows[~seen][first]])[order]
        return issues



def write_data_docs(result, path: Path) -> None:
    """One self-contained HTML page of the validation result, rendered by GX."""
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    html = DefaultJinjaPageView().render(ValidationResultsPageRenderer().render(result))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, path)


def first_per_cell(issues: list[Issue]) -> list[Issue]:
    """One error per cell: the first rule a cell breaks. The normalisers' issues come
    first because they carry the more specific code (e.g. phone_scientific_notation)."""
    seen: set[tuple[int, str]] = set()
    kept = []
    for issue in issues:
        if issue.row is not None and issue.severity == ERROR:
            if (issue.row, issue.column) in seen:
                continue
            seen.add((issue.row, issue.column))
        kept.append(issue)
    return kept


def _duplicates(rows, values, column) -> list[Issue]:
    """GX flags every copy in the chunk; the report flags the later ones and names the first.
    (Copies of a User ID from an earlier chunk are UserIds.check's, which comes after.)"""
    first: dict[str, int] = {}
    issues = []
    for row, value in sorted(zip(map(int, rows), values)):
        if value in first:
            issues.append(Issue("duplicate_user_id", row, column, value, {"first_row": first[value]}))
        else:
            first[value] = row
    return issues


class Normaliser:
    """Checks and converts the mapped cells of one file, column by column."""

    def __init__(self, channel: Channel, attributes: list[Attribute], default_region: str | None):
        self.channel = channel
        self.attributes = {ATTRIBUTE_PREFIX + a.key: a for a in attributes}
        self.default_region = default_region

    def normalise(self, frame: pd.DataFrame, headers: dict[str, str]) -> tuple[pd.DataFrame, list[Issue]]:
        """frame: mapped columns (field names), index = file line; headers: field -> file header."""
        issues: list[Issue] = []
        out = pd.DataFrame(index=frame.index)
        out["row"] = frame.index
        out["user_id"] = frame[USER_ID] if USER_ID in frame else None
        out["name"] = frame["name"] if "name" in frame else None  # its length is the GX suite's check
        simple = {"email": normalisation.normalise_email,
                  "gender": normalisation.normalise_gender, "birthday": normalisation.normalise_date,
                  "tags": normalisation.normalise_tags}
        for fname, func in simple.items():
            if fname in frame:
                out[fname] = self._column(frame[fname], headers[fname], func, issues,
                                          keep_empty_as="" if fname == "tags" else None)
        if "phone" in frame:
            column = frame["phone"]
            present = column.notna()
            results = normalisation.normalise_phones(column[present].tolist(), self.default_region)
            out["phone"] = self._collect(column[present], results, headers["phone"], issues)
        attrs = {}
        for target, attr in self.attributes.items():
            if target in frame:
                func = functools.partial(normalisation.normalise_attribute, type_=attr.type,
                                         options=list(attr.options or ()))
                attrs[attr.key] = self._column(frame[target], headers[target], func, issues,
                                               params={"column": headers[target]})
        # a list, not DataFrame.apply(axis=1): that builds a Series per row, ~10x slower
        out["attributes"] = ([_attribute_json(attrs.keys(), values)
                              for values in zip(*(column.tolist() for column in attrs.values()))]
                             if attrs else None)
        for fname in ("binding_teammate", "store_code"):
            out[fname] = frame[fname] if fname in frame else None
        for fname in NORMALISED_COLUMNS:
            if fname not in out:
                out[fname] = None
        return out[list(NORMALISED_COLUMNS)], issues

    def _column(self, column: pd.Series, header: str, func, issues, keep_empty_as=None, params=None):
        present = column.notna()
        results = _each_distinct(func, column[present])
        values = self._collect(column[present], results, header, issues, params)
        return values.reindex(column.index, fill_value=keep_empty_as)

    @staticmethod
    def _collect(raw: pd.Series, results, header, issues, params=None) -> pd.Series:
        values = []
        for row, value, result in zip(raw.index, raw, results):
            if result.ok:
                values.append(result.value)
            else:
                issues.append(Issue(result.code, int(row), header, value, {**result.params, **(params or {})}))
                values.append(None)
        return pd.Series(values, index=raw.index, dtype=object)


def _each_distinct(func, values: pd.Series) -> list:
    """func(value) for each value, called once per distinct value: dates, options, points
    and tag lists repeat down a column. (Results are shared between cells: never mutated.)"""
    results: dict = {}
    return [results[v] if v in results else results.setdefault(v, func(v)) for v in values]


def _attribute_json(keys, values) -> str | None:
    present = {k: v for k, v in zip(keys, values) if v is not None and not (isinstance(v, float) and pd.isna(v))}
    return json.dumps(present, ensure_ascii=False) if present else None


def neutralise(value) -> str:
    """Spreadsheet formula injection: a cell starting with = + - @ is shown as text."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def write_report(issues: list[Issue], path: Path, lang: str = "en", limit: int | None = None) -> None:
    """A report CSV (errors, or warnings): row,column,value,code,message, sorted by row."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ordered = sorted(issues, key=lambda i: (i.row or 0, i.column, i.code))
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(REPORT_COLUMNS)
        for issue in ordered[:limit]:
            writer.writerow([issue.row or "", neutralise(issue.column), neutralise(issue.value),
                             issue.code, neutralise(issue.message(lang))])
    os.replace(tmp, path)


def count_by_code(issues: list[Issue], severity: str = ERROR) -> dict[str, int]:
    counts: dict[str, int] = {}
    for issue in issues:
        if issue.severity == severity:
            counts[issue.code] = counts.get(issue.code, 0) + 1
    return dict(sorted(counts.items()))
