"""The unchanged-rows shortcut: rows the CDP already holds skip normalising, validation,
planning and writing (docs/design.md#unchanged-rows).

Each row of a file gets a fingerprint: its mapped cells plus a digest of everything else
its outcome depends on (the workspace's rules, the channel, the mapping, the tag mode,
the suite, this code). The upsert stores a row's fingerprint with its contact when the
row was applied on its own (not sharing a customer with another row of the file) and
warned of nothing; the triggers of migration 0006 forget it when the contact, its
customer, its tags or its binding change. A later file's row with the same fingerprint
would change nothing and warn of nothing, so validation leaves it out of the normalised
rows, unless it may depend on the file's other rows:

- the file repeats a User ID: the shortcut is off for the whole file (the full path
  reports the duplicates);
- a row taking the full path reaches the row's customer (through its contact, its
  email or its phone), or two unchanged rows share a customer: the row takes the full
  path too, and validation runs again without it.

The rows left out are listed in the import's folder (`import_folder.UNCHANGED`). The
upsert checks under the workspace lock, before its first chunk, that each still has its
fingerprint (another import or an edit may have changed it since validation); if one
has not, the import is validated again with the shortcut off.
"""
from __future__ import annotations

import hashlib
import io
import json
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from . import config, db, workspaces
from .channels import Channel

# the modules whose code decides what a row does: a change in any of them changes every fingerprint
_OUTCOME_MODULES = ("normalisation.py", "validation.py", "stages.py", "binding.py", "upsert.py", "set_based.py",
                    "profiles.py", "channels.py", "mapping.py", "workspaces.py", "normalised.py", "unchanged.py")
_HASH_KEYS = ("unchanged-row-01", "unchanged-row-02")


def rules_digest(conn, ws: workspaces.Workspace, channel: Channel, columns: dict[str, str], tag_mode: str,
                 complete_local_phones: bool = False) -> str:
    """A digest of everything besides a row's cells that decides what importing it does."""
    with conn.cursor() as cur:
        cur.execute("""SELECT lower(t.email), t.active, t.role,
                              coalesce(array_agg(s.code ORDER BY s.code) FILTER (WHERE s.code IS NOT NULL), '{}')
                       FROM cdp.teammates t
                       LEFT JOIN cdp.teammate_stores ts ON ts.teammate_id = t.id
                       LEFT JOIN cdp.stores s ON s.id = ts.store_id
                       WHERE t.workspace_id = %s GROUP BY t.id ORDER BY 1""", (ws.id,))
        teammates = cur.fetchall()
    facts = {
        "workspace": [ws.id, ws.omo_enabled, ws.default_region],
        "channel": channel.name, "columns": sorted(columns.items()), "tag_mode": tag_mode,
        "complete_local_phones": complete_local_phones,
        "attributes": [[a.key, a.type, list(a.options or ())] for a in workspaces.attributes(conn, ws.id)],
        "teammates": teammates, "stores": sorted(workspaces.store_codes(conn, ws.id)),
        "libraries": [metadata.version(name) for name in ("pandas", "phonenumbers")],
    }
    digest = hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode())
    for name in _OUTCOME_MODULES:
        digest.update((config.PACKAGE_DIR / name).read_bytes())
    for suite in sorted(config.expectations_dir().glob("*.json")):
        digest.update(suite.read_bytes())
    return digest.hexdigest()


def fingerprints(frame: pd.DataFrame, digest: str) -> pd.Series:
    """Each mapped row's fingerprint (32 hex digits, 128 bits: two independent 64-bit
    hashes of the row's cells and the rules' digest), indexed like `frame`."""
    cells = frame.reindex(columns=sorted(frame.columns)).assign(__rules__=digest)
    halves = [pd.util.hash_pandas_object(cells, index=False, hash_key=key, categorize=False).to_numpy()
              for key in _HASH_KEYS]
    return pd.Series([f"{a:016x}{b:016x}" for a, b in zip(*halves)], index=frame.index, dtype=object)


class Matcher:
    """Finds, chunk by chunk during validation, the rows whose fingerprint their contact holds.

    The first halves of the fingerprints the workspace's contacts of the channel hold are
    loaded once, as a sorted array (16 bytes a contact), so a chunk is matched in memory.
    A row whose fingerprint's first half is among them has, but for odds of 1 in 2^64,
    the cells (User ID included) of the row that contact's fingerprint was made from;
    `reached` confirms each whole against its contact in one join, and sends any other
    back to the full path.
    The rows matched, with their contacts and customers, and (while any matched) the
    User IDs, emails and phones of the rows taking the full path are kept in temporary
    tables of validation's connection.
    """

    def __init__(self, conn, ws: workspaces.Workspace, channel: Channel) -> None:
        self.conn, self.ws, self.channel = conn, ws, channel
        with conn.cursor() as cur:
            stored = io.BytesIO()
            cur.copy_expert(cur.mogrify(
                "COPY (SELECT left(replace(f.fingerprint::text, '-', ''), 16) FROM cdp.contact_fingerprints f"
                " JOIN cdp.contacts c ON c.id = f.contact_id WHERE c.workspace_id = %s AND c.channel = %s)"
                " TO STDOUT", (ws.id, channel.name)).decode(), stored)
            self._stored = np.sort(np.frombuffer(stored.getbuffer(), dtype=[("print", "S16"), ("end", "S1")])["print"])
            del stored
            self.active = len(self._stored) > 0
            if self.active:
                cur.execute("""DROP TABLE IF EXISTS matched_rows, unchanged_rows, full_path_rows;
                               CREATE TEMP TABLE matched_rows (row int, user_id text, fingerprint uuid);
                               CREATE TEMP TABLE unchanged_rows (row int PRIMARY KEY, contact_id bigint,
                                   customer_id bigint, fingerprint uuid);
                               CREATE TEMP TABLE full_path_rows (user_id text, email text, phone text)""")
        self._confirmed = False

    def match(self, user_ids: pd.Series, prints: pd.Series) -> np.ndarray:
        """The rows of a chunk (index = file line) whose fingerprint a contact holds."""
        if not self.active:
            return np.empty(0, dtype=np.int64)
        keys = np.array(prints.tolist(), dtype="S16")  # the first half: a hit is confirmed whole in `reached`
        at = np.minimum(np.searchsorted(self._stored, keys), len(self._stored) - 1)
        hit = (self._stored[at] == keys) & user_ids.notna().to_numpy()
        rows = user_ids.index[hit].to_numpy()
        if len(rows):
            found = pd.DataFrame({"row": rows, "user_id": user_ids[hit].to_numpy(), "print": prints[hit].to_numpy()})
            buffer = io.StringIO()
            found.to_csv(buffer, header=False, index=False)  # pandas' writer: 3x the csv module's pace here
            buffer.seek(0)
            with self.conn.cursor() as cur:
                cur.copy_expert("COPY matched_rows FROM STDIN WITH (FORMAT csv)", buffer)
        return rows

    def full_path(self, rows: pd.DataFrame) -> None:
        """Normalised rows taking the full path: what they reach decides which matched rows must join them."""
        if self.active:
            with self.conn.cursor() as cur:
                db.copy_rows(cur, "full_path_rows", rows[["user_id", "email", "phone"]].itertuples(index=False),
                             analyze=False)

    def reached(self) -> set[int]:
        """Matched rows that must take the full path after all: those whose contact does
        not hold their fingerprint (changed since the array was loaded), and those whose
        customer a full-path row reaches, or another matched row shares."""
        if not self.active:
            return set()
        with self.conn.cursor() as cur:
            if not self._confirmed:
                cur.execute("ANALYZE matched_rows")
                cur.execute("""INSERT INTO unchanged_rows
                               SELECT m.row, c.id, c.customer_id, m.fingerprint FROM matched_rows m
                               JOIN cdp.contacts c ON c.workspace_id = %s AND c.channel = %s
                                                  AND c.channel_user_id = m.user_id
                               JOIN cdp.contact_fingerprints f ON f.contact_id = c.id
                                                              AND f.fingerprint = m.fingerprint""",
                            (self.ws.id, self.channel.name))
                self._confirmed = True
            cur.execute("ANALYZE unchanged_rows; ANALYZE full_path_rows")
            cur.execute("""
                WITH reached AS (
                    SELECT c.customer_id FROM full_path_rows r
                    JOIN cdp.contacts c ON c.workspace_id = %(ws)s AND c.channel = %(ch)s
                                       AND c.channel_user_id = r.user_id
                    UNION SELECT cu.id FROM full_path_rows r
                    JOIN cdp.customers cu ON cu.workspace_id = %(ws)s AND cu.email = r.email
                    UNION SELECT cu.id FROM full_path_rows r
                    JOIN cdp.customers cu ON cu.workspace_id = %(ws)s AND cu.phone = r.phone
                    UNION SELECT customer_id FROM unchanged_rows GROUP BY customer_id HAVING count(*) > 1)
                SELECT row FROM unchanged_rows WHERE customer_id IN (SELECT customer_id FROM reached)
                UNION SELECT m.row FROM matched_rows m  -- an anti-join: NOT IN would rescan the list per row
                WHERE NOT EXISTS (SELECT 1 FROM unchanged_rows u WHERE u.row = m.row)""",
                        {"ws": self.ws.id, "ch": self.channel.name})
            return {row for (row,) in cur.fetchall()}

    def drop(self, rows: set[int]) -> None:
        """`rows` take the full path after all: validation runs again, matching no more rows."""
        with self.conn.cursor() as cur:
            cur.execute("DELETE FROM unchanged_rows WHERE row = ANY(%(rows)s);"
                        " DELETE FROM matched_rows WHERE row = ANY(%(rows)s); TRUNCATE full_path_rows",
                        {"rows": sorted(rows)})

    def write(self, path: Path) -> int:
        """The unchanged rows' contacts and fingerprints, for the upsert's check; their count."""
        with self.conn.cursor() as cur, open(path, "w", encoding="utf-8", newline="") as out:
            cur.copy_expert("COPY (SELECT contact_id, fingerprint FROM unchanged_rows ORDER BY row)"
                            " TO STDOUT WITH (FORMAT csv)", out)
            return cur.rowcount


def count(path: Path) -> int:
    """How many rows validation left out as unchanged (0 without a list)."""
    if not path.exists():
        return 0
    with open(path, "rb") as file:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: file.read(1 << 20), b""))


def still_held(conn, path: Path) -> bool:
    """Whether every row validation left out still has its fingerprint on its contact."""
    if not path.exists():
        return True
    with conn.cursor() as cur:
        cur.execute("CREATE TEMP TABLE IF NOT EXISTS listed_unchanged (contact_id bigint, fingerprint uuid)"
                    " ON COMMIT DROP; TRUNCATE listed_unchanged")
        with open(path, encoding="utf-8", newline="") as file:
            cur.copy_expert("COPY listed_unchanged FROM STDIN WITH (FORMAT csv)", file)
        cur.execute("""SELECT NOT EXISTS (
                           SELECT 1 FROM listed_unchanged l LEFT JOIN cdp.contact_fingerprints f
                             ON f.contact_id = l.contact_id AND f.fingerprint = l.fingerprint
                           WHERE f.contact_id IS NULL)""")
        return cur.fetchone()[0]


def applying(cur) -> None:
    """The import's own writes in this transaction: the triggers of migration 0006 leave
    them alone (`forget_changed` and the binding step take their place)."""
    cur.execute("SET LOCAL contact_import.applying = 'on'")


def forget_changed(cur, ws: workspaces.Workspace, plan) -> None:
    """After an upsert chunk's writes: forget the fingerprints its writes made false, as
    the triggers would have. The customers it updated or added a contact to (all their
    contacts), the stored customers holding the emails and phones it wrote, the contacts
    whose tags it changed. New customers and contacts need nothing: a new customer's id
    is newer than every holder of its email or phone, and a new contact has no fingerprint."""
    customers = set(plan.changed_customers) | {customer for _, customer in plan.new_contacts if customer > 0}
    values = plan.changed_customers.values()
    cur.execute("SELECT cdp.forget_fingerprints_of_customers(%s, %s, %s, %s)",
                (sorted(customers), ws.id, [c["email"] for c in values if c.get("email")],
                 [c["phone"] for c in values if c.get("phone")]))
    cur.execute("DELETE FROM cdp.contact_fingerprints WHERE contact_id = ANY(%s)",
                (sorted({contact for contact, _, _, _ in plan.tag_changes if contact}),))


def remember(cur, ws: workspaces.Workspace, channel: Channel, rows: pd.DataFrame, eligible) -> None:
    """After a chunk's writes and forget_changed, in its transaction: store the fingerprints
    of the chunk's rows that were applied on their own and warned of nothing (`eligible`,
    a boolean mask), and forget the contacts' other fingerprints. Every contact the chunk
    took then holds its row's fingerprint or none, which lets the binding step keep them."""
    if rows.empty:
        return
    cur.execute("CREATE TEMP TABLE IF NOT EXISTS chunk_fingerprints (user_id text, fingerprint uuid, keep boolean)"
                " ON COMMIT DELETE ROWS; TRUNCATE chunk_fingerprints")
    db.copy_rows(cur, "chunk_fingerprints",
                 zip(rows["user_id"], rows["fingerprint"], eligible & rows["fingerprint"].notna()))
    cur.execute("""
        WITH rows AS MATERIALIZED (
            SELECT c.id, s.fingerprint, s.keep FROM chunk_fingerprints s
            JOIN cdp.contacts c ON c.workspace_id = %s AND c.channel = %s AND c.channel_user_id = s.user_id),
        forgotten AS (
            DELETE FROM cdp.contact_fingerprints f USING rows r WHERE f.contact_id = r.id AND NOT r.keep)
        INSERT INTO cdp.contact_fingerprints (contact_id, fingerprint)
        SELECT id, fingerprint FROM rows WHERE keep
        ON CONFLICT (contact_id) DO UPDATE SET fingerprint = EXCLUDED.fingerprint""", (ws.id, channel.name))
