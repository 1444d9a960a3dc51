"""The preview's sample of concrete changes: what the person who approves an import sees
besides the counts (imports.preview_sample, the approval step, the Contact imports page).

A change is one thing one row of the file does to the CDP, as a dict:

- `row`, `user_id`: the file line and the contact's channel User ID;
- `change`: `new_contact`; `field` (a profile field of the contact's customer);
  `attribute` (a custom attribute of the customer); `tags`; `binding`;
- `field`: the profile field or the attribute's key (null for the others);
- `old`, `new`: the stored value and the one the import writes, as text (null: none;
  for a binding, `teammate (store)`, and `new` null unbinds);
- `added`, `removed`: the tags a `tags` change adds and removes.

The planner (upsert.Upserter) and the bindings' dry run (binding.changes) each collect the
first changes of the file until they have SAMPLE_SIZE; `merged` keeps the first
SAMPLE_SIZE of both in file order.
"""
from __future__ import annotations

import json
import re
from typing import Any, Iterable

SAMPLE_SIZE = 20
NEW_CONTACT, FIELD, ATTRIBUTE, TAGS, BINDING = "new_contact", "field", "attribute", "tags", "binding"
KINDS = (NEW_CONTACT, FIELD, ATTRIBUTE, TAGS, BINDING)


def change(row: int, user_id: str, kind: str, field: str | None = None, old: Any = None, new: Any = None,
           added: Iterable[str] = (), removed: Iterable[str] = ()) -> dict[str, Any]:
    return {"row": int(row), "user_id": user_id, "change": kind, "field": field, "old": _text(old),
            "new": _text(new), "added": list(added), "removed": list(removed)}


def _text(value: Any) -> str | None:
    """A stored or new value as the reviewer reads it: attributes may be numbers or booleans."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def merged(*samples: list[dict[str, Any]], size: int | None = None) -> list[dict[str, Any]]:
    """The first `size` (SAMPLE_SIZE) changes of the samples in file order; a row's changes
    keep their order."""
    found = sorted((c for sample in samples for c in sample), key=lambda c: c["row"])
    return found[:SAMPLE_SIZE if size is None else size]


# ------------------------------------------------------------------ the approval step's text
COUNT_LABELS = {"created": "contacts to create", "customers_created": "new customers",
                "updated": "contacts to update", "unchanged": "contacts left unchanged",
                "tags_added": "tags to add", "tags_removed": "tags to remove",
                "bound": "bindings to set", "unbound": "bindings to remove"}


def _code(value: str) -> str:
    """A value as a Markdown code span, whatever it holds: a file's cell may hold `*`, `[`,
    `<` or backticks, which must show as written, not format the text."""
    value = " ".join(value.split())  # a line break would end the list item
    if not value:
        return '""'
    fence = "`" * (max((len(run) for run in re.findall("`+", value)), default=0) + 1)
    pad = " " if value.startswith("`") or value.endswith("`") else ""
    return f"{fence}{pad}{value}{pad}{fence}"


def _value(value: str | None) -> str:
    return "(empty)" if value is None else _code(value)


def describe(c: dict[str, Any]) -> str:
    """One change in words, for the approval step."""
    kind = c["change"]
    if kind == NEW_CONTACT:
        return "new contact"
    if kind == TAGS:
        return "tags: " + ", ".join([f"+ {_code(t)}" for t in c["added"]] + [f"− {_code(t)}" for t in c["removed"]])
    if kind == BINDING:
        return f"binding: {_value(c['old'])} → {'(unbound)' if c['new'] is None else _code(c['new'])}"
    label = c["field"] if kind == FIELD else f"attribute {_code(c['field'])}"
    return f"{label}: {_value(c['old'])} → {_value(c['new'])}"


def approval_subject(record: dict[str, Any]) -> str:
    return f"Import {record.get('file_name') or 'a file'} into {record['workspace']}: approve?"


def approval_text(record: dict[str, Any], page_url: str) -> str:
    """The approval step's body (Markdown): the file and workspace, the preview's counts, its
    sample of changes and a link back to the Contact imports page."""
    counts = record.get("preview") or {}
    lines = [f"**File:** {_value(record.get('file_name'))}  ",
             f"**Workspace:** {_code(record['workspace'])} · channel {record['channel']} · tags {record['tag_mode']}"
             + (" · local phone numbers completed with the workspace's region"
                if record.get("complete_local_phones") else "")
             + f" · {record.get('total_rows') or 0} rows",
             "", "What the import will do if approved:", ""]
    ordered = [key for key in COUNT_LABELS if key in counts] + [key for key in counts if key not in COUNT_LABELS]
    lines += [f"- {COUNT_LABELS.get(key, key)}: {counts[key]:,}" for key in ordered]
    warnings = {code: n for code, n in (record.get("warnings") or {}).items() if n}
    if warnings:
        lines += ["", "Warnings (rows imported anyway; listed in the warnings report): "
                  + ", ".join(f"{code} {n:,}" for code, n in warnings.items())]
    sample = record.get("preview_sample") or []
    if sample:
        title = (f"The first {len(sample)} changes, in file order" if len(sample) >= SAMPLE_SIZE
                 else "The changes, in file order")
        lines += ["", f"**{title}:**", ""]
        lines += [f"- row {c['row']}, {_code(c['user_id'])}: {describe(c)}" for c in sample]
    elif counts and not any(counts.get(k) for k in COUNT_LABELS if k != "unchanged"):
        lines += ["", "Nothing in the file changes the CDP."]
    lines += ["", f"[Open the Contact imports page]({page_url})", "",
              "Approve to import; Reject to cancel the import with nothing written."]
    return "\n".join(lines)
