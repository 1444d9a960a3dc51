"""`contact-import export`: every contact of a workspace with its profile, tags and binding."""
from __future__ import annotations

import csv
import json
from typing import IO, Any, Iterator

from .reports import neutralise

FIELDS = ("channel", "user_id", "customer_id", "name", "email", "phone", "gender", "birthday",
          "attributes", "tags", "binding")

_QUERY = """
SELECT c.channel, c.channel_user_id, c.customer_id, cu.name, cu.email, cu.phone, cu.gender,
       to_char(cu.birthday, 'YYYY-MM-DD'), cu.attributes,
       coalesce((SELECT array_agg(t.name ORDER BY t.name) FROM cdp.contact_tags ct
                 JOIN cdp.tags t ON t.id = ct.tag_id WHERE ct.contact_id = c.id), '{}'),
       tm.email, st.code
FROM cdp.contacts c
JOIN cdp.customers cu ON cu.id = c.customer_id AND cu.workspace_id = c.workspace_id
LEFT JOIN cdp.bindings b ON b.contact_id = c.id
LEFT JOIN cdp.teammates tm ON tm.id = b.teammate_id
LEFT JOIN cdp.stores st ON st.id = b.store_id
WHERE c.workspace_id = %s AND (%s::text IS NULL OR c.channel = %s)
ORDER BY c.channel, c.channel_user_id
"""


def contacts(conn, workspace_id: int, channel: str | None = None) -> Iterator[dict[str, Any]]:
    with conn.cursor(name="export") as cur:  # server-side cursor: constant memory
        cur.itersize = 10_000
        cur.execute(_QUERY, (workspace_id, channel, channel))
        for row in cur:
            *values, teammate, store = row
            record = dict(zip(FIELDS, values))
            record["tags"] = list(record["tags"])
            record["binding"] = {"teammate": teammate, "store": store} if teammate else None
            yield record


def write(records: Iterator[dict[str, Any]], out: IO[str], fmt: str = "jsonl") -> int:
    count = 0
    if fmt == "csv":
        writer = csv.writer(out)
        writer.writerow(FIELDS)
    for record in records:
        if fmt == "csv":
            cells = [json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v
                     for v in (record[f] for f in FIELDS)]
            writer.writerow([neutralise(c) if c is not None else "" for c in cells])
        else:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        count += 1
    return count
