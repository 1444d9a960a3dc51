"""map_columns: which file column feeds which field or custom attribute (docs/design.md#the-import-file)."""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from .channels import Channel
from .errors import Issue
from .workspaces import Attribute

USER_ID = "user_id"
# field -> (canonical header, Chinese aliases)
PROFILE_FIELDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "name": ("Name", ("姓名", "名稱")),
    "email": ("Email", ("電子郵件",)),
    "phone": ("Phone", ("電話", "手機")),
    "gender": ("Gender", ("性別",)),
    "birthday": ("Birthday", ("生日",)),
    "tags": ("Tags", ("標籤",)),
    "binding_teammate": ("Binding Teammate", ("綁定成員",)),
    "store_code": ("Store Location Code", ("分店編號",)),
}
ATTRIBUTE_PREFIX = "attr:"


def header_key(header: str) -> str:
    """Headers match case- and space-insensitively."""
    return re.sub(r"\s+", "", header).casefold()


@dataclass
class ColumnMap:
    columns: dict[str, str] = field(default_factory=dict)  # file header -> field or "attr:<key>"
    issues: list[Issue] = field(default_factory=list)

    @property
    def fields(self) -> set[str]:
        return set(self.columns.values())


def known_names(channel: Channel, attributes: list[Attribute]) -> dict[str, str]:
    """Every header spelling we recognise -> its target."""
    names = {channel.user_id_header: USER_ID, USER_ID: USER_ID}
    for fname, (canonical, aliases) in PROFILE_FIELDS.items():
        for spelling in (canonical, *aliases):
            names[spelling] = fname
    for attr in attributes:
        names[attr.label] = names[attr.key] = ATTRIBUTE_PREFIX + attr.key
    return names


def map_columns(header: list[str], channel: Channel, attributes: list[Attribute],
                explicit: dict[str, str | None] | None = None) -> ColumnMap:
    names = known_names(channel, attributes)
    by_key = {header_key(k): v for k, v in names.items()}
    explicit_by_key = {header_key(k): v for k, v in (explicit or {}).items()}
    result = ColumnMap()
    seen: dict[str, str] = {}
    for position, raw in enumerate(header):
        key = header_key(raw)
        if key in explicit_by_key:
            target_name = explicit_by_key[key]
            if target_name is None:
                continue  # the mapping says: ignore this column
            target = by_key.get(header_key(target_name)) or (target_name if target_name in PROFILE_FIELDS else None)
            if target is None:
                result.issues.append(_unknown(raw, names, row=1, hint=target_name))
                continue
        elif not key:
            if _blank_column_ok(position, header):
                continue
            result.issues.append(Issue("unknown_column", row=1, column=f"(column {position + 1})"))
            continue
        else:
            target = by_key.get(key)
            if target is None:
                result.issues.append(_unknown(raw, names, row=1))
                continue
        if target in seen:
            result.issues.append(Issue("duplicate_column", row=1, column=raw,
                                       params={"first": seen[target]}))
            continue
        seen[target] = raw
        result.columns[raw] = target
    if USER_ID not in seen:
        result.issues.append(Issue("missing_required_column", row=1, column=channel.user_id_header))
    return result


def _blank_column_ok(position: int, header: list[str]) -> bool:
    """Spreadsheets often leave empty header cells after the last real column."""
    return all(not h.strip() for h in header[position:])


def _unknown(raw: str, names: dict[str, str], row: int, hint: str | None = None) -> Issue:
    """An unknown_column issue that suggests the closest spellings we know."""
    by_key = {header_key(n): n for n in names if n != USER_ID}
    close = [by_key[k] for k in difflib.get_close_matches(header_key(hint or raw), list(by_key), n=3, cutoff=0.6)]
    return Issue("unknown_column", row=row, column=raw, value=hint or "", params={"candidates": close})
