"""upsert_contacts' whole-file pass in SQL: the rows that need no planning row by row.

The normalised file is copied once into a temporary table, and one statement builds
the table the import reads from. It marks the rows whose outcome may depend on another
row of the file (`related`): rows sharing an email or phone in the file, or a stored
customer (through their contact, email or phone). Every other row touches a customer
no other row touches and looks up values no other row changes, so what the database
holds now is what it will hold when the row's chunk comes, and the same statement
settles the two common cases among them for the whole file:

- `new`: no contact and no customer holding the email or phone: a new customer, contact
  and tags, inserted per chunk from the table (`insert_new`);
- `unchanged`: the contact exists, no other customer holds its email or phone (that
  would be an identity conflict), and every non-empty cell, attribute and tag is stored.

Everything else is left to the Python planner (upsert.Upserter). A restarted import
runs the pass again on the database as its committed chunks left it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from . import normalised
from .channels import Channel
from .workspaces import Workspace

STAGE = "file_stage"  # the file as copied
TABLE = "file_rows"  # the file with what the pass found out about each row


@dataclass
class WholeFilePass:
    """What the whole-file pass found: the rows it settled (counts, new rows per chunk) and the
    rows it leaves to the Python planner."""

    related: set[int] = field(default_factory=set)  # file lines whose outcome depends on other rows
    to_plan: set[int] = field(default_factory=set)  # file lines the Python planner takes (related ones too)
    counts: dict[int, dict[str, int]] = field(default_factory=dict)  # chunk number -> counts of settled rows
    new: dict[int, int] = field(default_factory=dict)  # chunk number -> new rows insert_new writes


def prepare(conn, ws: Workspace, channel: Channel, tag_mode: str, path, chunk_rows: int) -> WholeFilePass:
    with conn.cursor() as cur:
        normalised.stage(cur, path, STAGE)
        params = {"ws": ws.id, "ch": channel.name, "append": tag_mode != "overwrite", "chunk": chunk_rows,
                  "first_line": normalised.FIRST_LINE}
        cur.execute("SET LOCAL work_mem = '256MB'")  # the grouping sorts on disk otherwise
        cur.execute(_SETTLE, params)
        cur.execute(f"DROP TABLE {STAGE}; CREATE INDEX ON {TABLE} (row); ANALYZE {TABLE}")
        settled = WholeFilePass()
        cur.execute(f"SELECT row, related FROM {TABLE} WHERE kind IS NULL")
        for row, related in cur.fetchall():
            settled.to_plan.add(row)
            if related:
                settled.related.add(row)
        cur.execute(f"""SELECT (row - %(first_line)s) / %(chunk)s, kind, count(*), sum(jsonb_array_length(coalesce(tags, '[]')))
                        FROM {TABLE} WHERE kind IS NOT NULL GROUP BY 1, 2""", params)
        for number, kind, rows, tags in cur.fetchall():
            counts = settled.counts.setdefault(number, {})
            if kind == "new":
                settled.new[number] = rows
                counts.update(created=rows, customers_created=rows, tags_added=tags)
            else:
                counts["unchanged"] = rows
    return settled


def insert_new(cur, ws: Workspace, channel: Channel, number: int, chunk_rows: int) -> None:
    """Write chunk `number`'s new rows: customers, contacts, tags, and their fingerprints
    (unchanged.py: a settled row was applied on its own and warns of nothing)."""
    first = normalised.FIRST_LINE + number * chunk_rows
    cur.execute(_INSERT_NEW, {"ws": ws.id, "ch": channel.name, "first": first, "last": first + chunk_rows - 1})


def remember_unchanged(cur, number: int, chunk_rows: int) -> None:
    """Give chunk `number`'s unchanged rows' contacts the rows' fingerprints, where they
    hold another or none."""
    first = normalised.FIRST_LINE + number * chunk_rows
    cur.execute(f"""INSERT INTO cdp.contact_fingerprints (contact_id, fingerprint)
                    SELECT contact_id, fingerprint FROM {TABLE}
                    WHERE kind = 'unchanged' AND fingerprint IS NOT NULL AND row BETWEEN %s AND %s
                    ON CONFLICT (contact_id) DO UPDATE SET fingerprint = EXCLUDED.fingerprint
                    WHERE cdp.contact_fingerprints.fingerprint <> EXCLUDED.fingerprint""",
                (first, first + chunk_rows - 1))


# One statement of hash joins on the whole file's contacts, emails and phones (an index
# probe per row took about twice as long at 250k rows), writing the table once: marking
# and classifying with UPDATEs rewrote every row twice.
_SETTLE = f"""
CREATE TEMP TABLE {TABLE} AS
WITH contact_links AS MATERIALIZED (  -- the rows' existing contacts
    SELECT s.row, c.customer_id, c.id AS contact_id FROM {STAGE} s
    JOIN cdp.contacts c ON c.workspace_id = %(ws)s AND c.channel = %(ch)s AND c.channel_user_id = s.user_id),
links AS MATERIALIZED (  -- each row and the stored customers it reaches, and how
    SELECT row, 'contact' AS via, customer_id FROM contact_links
    UNION ALL
    SELECT s.row, 'email', cu.id FROM {STAGE} s
    JOIN cdp.customers cu ON cu.workspace_id = %(ws)s AND cu.email = s.email
    UNION ALL
    SELECT s.row, 'phone', cu.id FROM {STAGE} s
    JOIN cdp.customers cu ON cu.workspace_id = %(ws)s AND cu.phone = s.phone),
owners AS (  -- the customer each row's email (phone) matches: the oldest one holding it
    SELECT row, min(customer_id) FILTER (WHERE via = 'email') AS email_owner,
           min(customer_id) FILTER (WHERE via = 'phone') AS phone_owner
    FROM links WHERE via <> 'contact' GROUP BY row),
dependent AS (  -- rows reaching a stored customer another row reaches, or sharing an email/phone in the file
    SELECT row FROM links WHERE customer_id IN (
        SELECT customer_id FROM links GROUP BY customer_id HAVING min(row) <> max(row))
    UNION ALL
    SELECT row FROM {STAGE} WHERE email IN (
        SELECT email FROM {STAGE} WHERE email IS NOT NULL GROUP BY email HAVING count(*) > 1)
    UNION ALL
    SELECT row FROM {STAGE} WHERE phone IN (
        SELECT phone FROM {STAGE} WHERE phone IS NOT NULL GROUP BY phone HAVING count(*) > 1)),
stored_tags AS (
    SELECT ct.contact_id, jsonb_agg(t.name) AS tags FROM cdp.contact_tags ct
    JOIN cdp.tags t ON t.id = ct.tag_id AND t.workspace_id = %(ws)s
    WHERE ct.contact_id IN (SELECT contact_id FROM contact_links)
    GROUP BY ct.contact_id)
SELECT r.*, CASE WHEN r.related THEN NULL
                 WHEN r.contact_id IS NULL THEN CASE WHEN r.email_owner IS NULL AND r.phone_owner IS NULL THEN 'new' END
                 WHEN coalesce(r.email_owner, r.customer_id) = r.customer_id
                  AND coalesce(r.phone_owner, r.customer_id) = r.customer_id AND r.stored THEN 'unchanged'
            END AS kind
FROM (SELECT f.*, d.row IS NOT NULL AS related, cl.customer_id, cl.contact_id,
             o.email_owner, o.phone_owner,
             (f.name IS NULL OR f.name = cu.name) AND (f.email IS NULL OR f.email = cu.email)
             AND (f.phone IS NULL OR f.phone = cu.phone) AND (f.gender IS NULL OR f.gender = cu.gender)
             AND (f.birthday IS NULL OR f.birthday = cu.birthday)
             AND (f.attributes IS NULL OR cu.attributes @> f.attributes)
             AND coalesce(st.tags, '[]') @> coalesce(f.tags, '[]')
             AND (%(append)s OR coalesce(f.tags, '[]') @> coalesce(st.tags, '[]')) AS stored
      FROM {STAGE} f
      LEFT JOIN (SELECT DISTINCT row FROM dependent) d ON d.row = f.row
      LEFT JOIN contact_links cl ON cl.row = f.row
      LEFT JOIN owners o ON o.row = f.row
      LEFT JOIN cdp.customers cu ON cu.workspace_id = %(ws)s AND cu.id = cl.customer_id
      LEFT JOIN stored_tags st ON st.contact_id = cl.contact_id) r
"""

# The chunk's new customers, contacts and their tags in one statement: ids drawn in file
# order, the three inserts reading the same rows. (Drawing them with an UPDATE of the
# table first rewrote every new row once more.)
_INSERT_NEW = f"""
INSERT INTO cdp.tags (workspace_id, name)
SELECT DISTINCT %(ws)s, t.name FROM {TABLE} s, jsonb_array_elements_text(s.tags) t(name)
WHERE s.kind = 'new' AND s.row BETWEEN %(first)s AND %(last)s
ON CONFLICT (workspace_id, name) DO NOTHING;
WITH new AS MATERIALIZED (
    SELECT s.*, nextval('cdp.customers_id_seq') AS new_customer_id, nextval('cdp.contacts_id_seq') AS new_contact_id
    FROM (SELECT * FROM {TABLE} WHERE kind = 'new' AND row BETWEEN %(first)s AND %(last)s ORDER BY row) s),
customers AS (
    INSERT INTO cdp.customers (id, workspace_id, name, email, phone, gender, birthday, attributes)
    SELECT new_customer_id, %(ws)s, name, email, phone, gender, birthday, coalesce(attributes, '{{}}') FROM new),
contacts AS (
    INSERT INTO cdp.contacts (id, workspace_id, channel, channel_user_id, customer_id)
    SELECT new_contact_id, %(ws)s, %(ch)s, user_id, new_customer_id FROM new),
fingerprints AS (
    INSERT INTO cdp.contact_fingerprints (contact_id, fingerprint)
    SELECT new_contact_id, fingerprint FROM new WHERE fingerprint IS NOT NULL)
INSERT INTO cdp.contact_tags (contact_id, tag_id)
SELECT n.new_contact_id, t.id FROM new n, jsonb_array_elements_text(n.tags) e(name)
JOIN cdp.tags t ON t.workspace_id = %(ws)s AND t.name = e.name
ON CONFLICT DO NOTHING;
"""
