"""validate: the two rule engines on a mapped file, one report.

Every column rule has one owner, and its constants (limits, patterns, accepted words)
are written there only:

- Great Expectations checks what is declarative about a cell kept as written (trimmed):
  the User ID is present, of the channel's pattern and unique (UserIds carries
  uniqueness across chunks); Name and text attributes are not too long; Binding
  Teammate is a teammate's email or UNASSIGNED; Store Location Code is a store of the
  workspace. The suite is expectations/base.json, named after the channel and given
  its User ID pattern from the channel registry (suite_spec), plus what the workspace
  generates (workspace_expectations). Each expectation's meta.code is its report code.
- The normalisers (normalisation.py) judge every column they convert, with all of its
  rules: email, phone, gender, birthday, tags, and number, date, boolean and select
  attributes. Normaliser applies them to a frame.
- binding.check adds the binding rules that need the database.

No column is judged by both engines; tests/unit/test_rule_owners.py runs both on tricky
values of every column and fails if they ever do. Their issues land in one list, and
first_per_cell keeps one per cell.
"""
from __future__ import annotations

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
from .binding import UNASSIGNED
from .channels import Channel
from .errors import ERROR, Issue
from .mapping import ATTRIBUTE_PREFIX, USER_ID
from .normalised import COLUMNS as NORMALISED_COLUMNS
from .profiles import fingerprints
from .workspaces import Attribute


def suite_spec(channel: Channel, generated: list[dict] = ()) -> dict:
    """The channel's suite: expectations/base.json named after the channel, with its
    User ID pattern, plus `generated` (workspace_expectations)."""
    pattern = {"user_id_pattern": channel.user_id_pattern}
    base = [{**e, "kwargs": {k: Template(v).safe_substitute(pattern) if isinstance(v, str) else v
                             for k, v in e["kwargs"].items()}}
            for e in _base_suite()["expectations"]]
    return {"name": channel.name, "expectations": [*base, *generated]}


def _base_suite() -> dict:
    return json.loads((config.expectations_dir() / "base.json").read_text(encoding="utf-8"))


def workspace_expectations(attributes: list[Attribute], teammates: list[str] | None,
                           stores: list[str] | None) -> list[dict]:
    """Expectations generated from the workspace: the base suite's attribute_expectations
    for each custom attribute of that type, and the OMO set-up.

    teammates / stores are None when the file's bindings are not checked against the
    workspace at all (channel without OMO, workspace without the plan).
    """
    per_type = _base_suite()["attribute_expectations"]
    generated = [{**e, "kwargs": {**e["kwargs"], "column": ATTRIBUTE_PREFIX + attr.key}}
                 for attr in attributes for e in per_type.get(attr.type, ())]
    if teammates is not None:
        pattern = "|".join(re.escape(e) for e in [*teammates, UNASSIGNED])
        generated.append(_expectation("expect_column_values_to_match_regex", "binding_teammate",
                                      "teammate_not_found", regex=f"^(?i:{pattern})$"))
    if stores is not None:
        generated.append(_expectation("expect_column_values_to_be_in_set", "store_code", "store_not_found",
                                      value_set=sorted(stores)))
    return generated


def _expectation(kind: str, column: str, code: str, **kwargs) -> dict:
    return {"type": kind, "kwargs": {"column": column, **kwargs}, "meta": {"code": code}}


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
    """Run the channel's suite (suite_spec) plus `generated` expectations on the mapped frame.

    frame: index = file line, None = empty cell; headers: field -> the file's header,
    which the report names. Expectations on columns the file does not have are left out.
    When an expectation fails and `data_docs` is given, GX's own page of the result is
    written there (the Data Docs that sit beside the error report). `user_ids` carries
    the User IDs of the file's earlier chunks, so uniqueness holds across the file.
    """
    user_ids = user_ids or UserIds()
    spec = suite_spec(channel, generated)
    spec["expectations"] = [e for e in spec["expectations"]
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
        kwargs = outcome.expectation_config.kwargs
        code, field_name = outcome.expectation_config.meta["code"], kwargs["column"]
        column = headers.get(field_name, field_name)
        # a length rule's message names its limit, written once: as the rule's max_value
        params = {"channel": channel.label,
                  **({"limit": kwargs["max_value"]} if kwargs.get("max_value") is not None else {})}
        rows = outcome.result.get("unexpected_index_list") or []
        values = outcome.result.get("unexpected_list") or []
        if code == "duplicate_user_id":
            # a copy of an earlier chunk's User ID names the file's first row, not the chunk's
            issues.extend(earlier.pop(issue.row, issue) for issue in _duplicates(rows, values, column))
            continue
        issues.extend(Issue(code, int(row), column, "" if value is None else str(value), params)
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
    """One error per cell: the first rule a cell breaks, in the order of `issues` (the
    caller's: the normalisers', then binding.check's, then the suite's, the more specific
    first). The engines judge different columns, so what meets here is a User ID both
    off-pattern and repeated, and a teammate or store both binding.check and the suite
    find missing."""
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
    """The normalisers on the mapped cells of one file, column by column: each column
    they convert they also judge (normalisation.py). The User ID, Name, text attributes
    and the binding columns are kept as written; the GX suite judges them.

    (Here rather than in normalisation.py: the phone helper processes run that module,
    and importing pandas there would cost each of them more than a second.)
    """

    def __init__(self, channel: Channel, attributes: list[Attribute], default_region: str | None,
                 complete_local_phones: bool = False):
        # channel: no normaliser's rule depends on it
        self.attributes = {ATTRIBUTE_PREFIX + a.key: a for a in attributes}
        self.default_region = default_region
        self.complete_local_phones = complete_local_phones  # the import option (normalisation.completed)

    def normalise(self, frame: pd.DataFrame, headers: dict[str, str]) -> tuple[pd.DataFrame, list[Issue]]:
        """frame: mapped columns (field names), index = file line; headers: field -> file header."""
        issues: list[Issue] = []
        out = pd.DataFrame(index=frame.index)
        out["row"] = frame.index
        out["user_id"] = frame[USER_ID] if USER_ID in frame else None
        out["name"] = frame["name"] if "name" in frame else None
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
            if self.complete_local_phones:
                results = [normalisation.completed(r) for r in results]
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
                if result.warning is not None:  # taken, but changed: the warnings report says how
                    issues.append(Issue(result.warning, int(row), header, value, result.params))
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
