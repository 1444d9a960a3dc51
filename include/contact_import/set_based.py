"""upsert_contacts' whole-file pass in SQL: the rows that need no planning row by row.

The normalised file is copied once into a temporary table. One statement marks the
rows whose outcome may depend on another row of the file (`related`): rows sharing an
email or phone in the file, or a stored customer (through their contact, email or
phone). Every other row touches a customer no other row touches and looks up values no
other row changes, so what the database holds now is what it will hold when the row's
chunk comes, and one more statement settles the two common cases for the whole file:

- `new`: no contact and no customer holding the email or phone: a new customer, contact
  and tags, inserted per chunk from the table (`insert_new`);
- `unchanged`: the contact exists, no other customer holds its email or phone (that
  would be an identity conflict), and every non-empty cell, attribute and tag is stored.

Everything else is left to the Python planner (upsert.Upserter). A restarted import
runs the pass again on the database as its committed chunks left it.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field

from psycopg2 import sql

from .channels import Channel
from .workspaces import Workspace

TABLE = "file_rows"


@dataclass
class Settled:
    related: set[int] = field(default_factory=set)  # file lines whose outcome depends on other rows
    to_plan: set[int] = field(default_factory=set)  # file lines the Python planner takes (related ones too)
    counts: dict[int, dict[str, int]] = field(default_factory=dict)  # chunk number -> counts of settled rows
    new: dict[int, int] = field(default_factory=dict)  # chunk number -> new rows insert_new writes


def prepare(conn, ws: Workspace, channel: Channel, tag_mode: str, path, chunk_rows: int) -> Settled:
    with conn.cursor() as cur:
        _stage_file(cur, path)
        params = {"ws": ws.id, "ch": channel.name, "append": tag_mode != "overwrite", "chunk": chunk_rows}
        cur.execute("SET LOCAL work_mem = '256MB'")  # the grouping sorts on disk otherwise
        cur.execute(_MARK_RELATED, params)
        cur.execute(_CLASSIFY, params)
        settled = Settled()
        cur.execute(f"SELECT row, related FROM {TABLE} WHERE kind IS NULL")
        for row, related in cur.fetchall():
            settled.to_plan.add(row)
            if related:
                settled.related.add(row)
        cur.execute(f"""SELECT (pos - 1) / %(chunk)s, kind, count(*), sum(jsonb_array_length(coalesce(tags, '[]')))
                        FROM {TABLE} WHERE kind IS NOT NULL GROUP BY 1, 2""", params)
        for number, kind, rows, tags in cur.fetchall():
            counts = settled.counts.setdefault(number, {})
            if kind == "new":
                settled.new[number] = rows
                counts.update(created=rows, customers_created=rows, tags_added=tags)
            else:
                counts["unchanged"] = rows
    return settled


def _stage_file(cur, path) -> None:
    """The normalised file in TABLE, pos = its place in the file (from 1)."""
    with open(path, encoding="utf-8", newline="") as file:
        header = next(csv.reader(file))
        file.seek(0)
        cur.execute(f"""DROP TABLE IF EXISTS {TABLE};
                        CREATE TEMP TABLE {TABLE} (pos int GENERATED ALWAYS AS IDENTITY, row int, user_id text,
                            name text, email text, phone text, gender text, birthday date, tags jsonb,
                            attributes jsonb, binding_teammate text, store_code text, related boolean,
                            kind text, customer_id bigint, contact_id bigint)""")
        cur.copy_expert(sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv, HEADER true)").format(
            sql.Identifier(TABLE), sql.SQL(", ").join(map(sql.Identifier, header))).as_string(cur), file)
    cur.execute(f"CREATE INDEX ON {TABLE} (pos); ANALYZE {TABLE}")


def insert_new(cur, ws: Workspace, channel: Channel, number: int, chunk_rows: int) -> None:
    """Write chunk `number`'s new rows: customers, contacts, tags."""
    cur.execute(_INSERT_NEW, {"ws": ws.id, "ch": channel.name, "first": number * chunk_rows + 1,
                              "last": (number + 1) * chunk_rows})


_MARK_RELATED = f"""
WITH links AS (  -- each row and the stored customers it reaches
    SELECT s.row, c.customer_id FROM {TABLE} s
    JOIN cdp.contacts c ON c.workspace_id = %(ws)s AND c.channel = %(ch)s AND c.channel_user_id = s.user_id
    UNION
    SELECT s.row, cu.id FROM {TABLE} s JOIN cdp.customers cu ON cu.workspace_id = %(ws)s AND cu.email = s.email
    UNION
    SELECT s.row, cu.id FROM {TABLE} s JOIN cdp.customers cu ON cu.workspace_id = %(ws)s AND cu.phone = s.phone),
shared AS (SELECT customer_id FROM links GROUP BY customer_id HAVING count(*) > 1),
dependent AS (
    SELECT row FROM links JOIN shared USING (customer_id)
    UNION
    SELECT row FROM {TABLE} WHERE email IN (
        SELECT email FROM {TABLE} WHERE email IS NOT NULL GROUP BY email HAVING count(*) > 1)
    UNION
    SELECT row FROM {TABLE} WHERE phone IN (
        SELECT phone FROM {TABLE} WHERE phone IS NOT NULL GROUP BY phone HAVING count(*) > 1))
UPDATE {TABLE} s SET related = true FROM dependent d WHERE s.row = d.row
"""

# Hash joins on the whole file's emails, phones and contacts: an index probe per row
# (LATERAL) took about twice as long at 250k rows.
_CLASSIFY = f"""
UPDATE {TABLE} s SET kind = k.kind
FROM (SELECT f.row,
             CASE WHEN co.id IS NULL THEN CASE WHEN em.id IS NULL AND ph.id IS NULL THEN 'new' END
                  WHEN coalesce(em.id, co.customer_id) = co.customer_id
                   AND coalesce(ph.id, co.customer_id) = co.customer_id
                   AND (f.name IS NULL OR f.name = cu.name) AND (f.email IS NULL OR f.email = cu.email)
                   AND (f.phone IS NULL OR f.phone = cu.phone) AND (f.gender IS NULL OR f.gender = cu.gender)
                   AND (f.birthday IS NULL OR f.birthday = cu.birthday)
                   AND (f.attributes IS NULL OR cu.attributes @> f.attributes)
                   AND coalesce(st.tags, '[]') @> coalesce(f.tags, '[]')
                   AND (%(append)s OR coalesce(f.tags, '[]') @> coalesce(st.tags, '[]'))
                  THEN 'unchanged' END AS kind
      FROM {TABLE} f
      LEFT JOIN cdp.contacts co ON co.workspace_id = %(ws)s AND co.channel = %(ch)s AND co.channel_user_id = f.user_id
      LEFT JOIN cdp.customers cu ON cu.id = co.customer_id
      LEFT JOIN (SELECT c.email, min(c.id) AS id FROM cdp.customers c
                 WHERE c.workspace_id = %(ws)s AND c.email IN (SELECT email FROM {TABLE} WHERE related IS NULL)
                 GROUP BY c.email) em ON em.email = f.email
      LEFT JOIN (SELECT c.phone, min(c.id) AS id FROM cdp.customers c
                 WHERE c.workspace_id = %(ws)s AND c.phone IN (SELECT phone FROM {TABLE} WHERE related IS NULL)
                 GROUP BY c.phone) ph ON ph.phone = f.phone
      LEFT JOIN (SELECT ct.contact_id, jsonb_agg(t.name) AS tags FROM cdp.contact_tags ct
                 JOIN cdp.tags t ON t.id = ct.tag_id
                 WHERE ct.contact_id IN (SELECT c.id FROM {TABLE} g JOIN cdp.contacts c ON c.workspace_id = %(ws)s
                                         AND c.channel = %(ch)s AND c.channel_user_id = g.user_id
                                         WHERE g.related IS NULL)
                 GROUP BY ct.contact_id) st ON st.contact_id = co.id
      WHERE f.related IS NULL) k
WHERE s.row = k.row
"""

_INSERT_NEW = f"""
UPDATE {TABLE} SET customer_id = nextval('cdp.customers_id_seq'), contact_id = nextval('cdp.contacts_id_seq')
WHERE kind = 'new' AND pos BETWEEN %(first)s AND %(last)s;
INSERT INTO cdp.customers (id, workspace_id, name, email, phone, gender, birthday, attributes)
SELECT customer_id, %(ws)s, name, email, phone, gender, birthday, coalesce(attributes, '{{}}')
FROM {TABLE} WHERE kind = 'new' AND pos BETWEEN %(first)s AND %(last)s ORDER BY pos;
INSERT INTO cdp.contacts (id, workspace_id, channel, channel_user_id, customer_id)
SELECT contact_id, %(ws)s, %(ch)s, user_id, customer_id
FROM {TABLE} WHERE kind = 'new' AND pos BETWEEN %(first)s AND %(last)s ORDER BY pos;
INSERT INTO cdp.tags (workspace_id, name)
SELECT DISTINCT %(ws)s, t.name FROM {TABLE} s, jsonb_array_elements_text(s.tags) t(name)
WHERE s.kind = 'new' AND s.pos BETWEEN %(first)s AND %(last)s
ON CONFLICT (workspace_id, name) DO NOTHING;
INSERT INTO cdp.contact_tags (contact_id, tag_id)
SELECT s.contact_id, t.id FROM {TABLE} s, jsonb_array_elements_text(s.tags) n(name)
JOIN cdp.tags t ON t.workspace_id = %(ws)s AND t.name = n.name
WHERE s.kind = 'new' AND s.pos BETWEEN %(first)s AND %(last)s
ON CONFLICT DO NOTHING;
"""
