"""The sample file a user downloads to fill in (`contact-import template`, API /templates)."""
from __future__ import annotations

import csv
import io

from .channels import get_channel
from .mapping import PROFILE_FIELDS
from .workspaces import Attribute, Workspace

_EXAMPLE_ATTRIBUTE = {"text": "note", "number": "100", "date": "2024-01-31", "boolean": "true"}


def render(channel_name: str, tag_mode: str = "append", ws: Workspace | None = None,
           attributes: list[Attribute] | None = None) -> str:
    """CSV text: the header the importer expects, and example rows showing the tag mode.

    In append mode the Tags cell lists tags to add; in overwrite mode it is the
    contact's complete tag list, and the second row's empty cell removes all its tags.
    """
    channel = get_channel(channel_name)
    binding = channel.omo_binding and (ws is None or ws.omo_enabled)
    fields = [f for f in PROFILE_FIELDS if binding or f not in ("binding_teammate", "store_code")]
    header = [channel.user_id_header] + [PROFILE_FIELDS[f][0] for f in fields]
    header += [a.label for a in attributes or []]
    examples = [
        {"name": "王小明", "email": "ming@example.com", "phone": "886911223344", "gender": "male",
         "birthday": "1990-01-31", "tags": "VIP,台北" if tag_mode == "append" else "VIP,台北,回購客",
         "binding_teammate": "amy@shop.example", "store_code": "S001"},
        {"name": "Mary Chan", "email": "mary@example.com", "phone": "85291234567", "gender": "female",
         "birthday": "1985/12/01", "tags": "新客" if tag_mode == "append" else "",
         "binding_teammate": "UNASSIGNED", "store_code": ""},
    ]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for user_id, example in zip(channel.example_user_ids, examples):
        attrs = [(a.options[0] if a.type == "select" and a.options else _EXAMPLE_ATTRIBUTE.get(a.type, ""))
                 for a in attributes or []]
        writer.writerow([user_id] + [example[f] for f in fields] + attrs)
    return out.getvalue()
