"""upsert_contacts: resolve each row's customer in file order, then write set-based.

A whole-file pass in SQL (set_based.py) settles the rows no other row of the file
touches when they are new contacts of new customers or unchanged. The rest (rows
sharing a customer or values with other rows, identity matches and conflicts,
changes) go through one pass in Python per chunk that applies the
matching rules row by row in file order, after three bulk reads (the rows' existing
contacts with their tags; the customers they or their emails/phones point at).
Writes are COPY into temporary tables and a handful of set-based statements. The
chunk's writes and its checkpoint (imports.last_chunk, processed_rows, result)
commit in one transaction, so a retried task continues after the last committed chunk.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable

import pandas as pd

from . import changes, db, normalised, set_based, unchanged
from .channels import Channel
from .errors import Issue
from .profiles import PROFILE
from .workspaces import Workspace

COUNTS = ("created", "updated", "unchanged", "customers_created", "tags_added", "tags_removed")
LOCK_NAMESPACE = 74_616  # pg_advisory_lock(namespace, workspace_id): one import per workspace at a time


class Cancelled(Exception):
    """The import was cancelled between two chunks."""


@dataclass
class ChunkPlan:
    number: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    new_customers: dict[int, dict] = field(default_factory=dict)
    changed_customers: dict[int, dict] = field(default_factory=dict)
    new_contacts: list[tuple[str, int]] = field(default_factory=list)
    # (contact id, or None for a contact this chunk creates; user_id, tag, add|remove)
    tag_changes: list[tuple[int | None, str, str, str]] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    carried: dict[int, dict] = field(default_factory=dict)  # dry run: customers later rows may see again
    set_based: int = 0  # rows settled by the whole-file pass, of which
    set_based_new: int = 0  # new contacts of new customers, written by set_based.insert_new
    changes: list[dict] = field(default_factory=list)  # with a sample to fill: the chunk's first changes


class Upserter:
    def __init__(self, conn, ws: Workspace, channel: Channel, tag_mode: str,
                 settled: set_based.WholeFilePass | None = None, chunk_rows: int = 0, dry_run: bool = False,
                 sample: list[dict] | None = None):
        """settled: the whole-file pass's outcome for the file about to be planned in chunks
        of chunk_rows; None plans every row in Python and counts every row as related.
        dry_run: plan without writing (the preview); the customers related rows touch are
        carried from chunk to chunk in memory, standing in for the writes a real import
        would have made by then. Every other row only ever sees the database as it is.
        sample: a list to fill with the file's first changes (changes.SAMPLE_SIZE, the
        preview's), collected while the rows are planned; it changes nothing planned."""
        self.conn, self.ws, self.channel, self.tag_mode = conn, ws, channel, tag_mode
        self._first_row_of_customer: dict[int, int] = {}
        self._next_placeholder = -1
        self.dry_run = dry_run
        self._settled, self._chunk_rows = settled, chunk_rows
        self._carried: dict[int, dict] = {}  # customer id -> profile, as the import would have left it
        self._holding: dict[str, dict[str, set[int]]] = {"email": {}, "phone": {}}  # carried customers by value
        self.sample = sample
        self._room = 0  # changes the sample still takes, for the chunk being planned

    def lock_workspace(self) -> None:
        """Held for the session: two imports into one workspace never interleave chunks."""
        with self.conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s, %s)", (LOCK_NAMESPACE, self.ws.id))

    def unlock_workspace(self) -> None:
        with self.conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_NAMESPACE, self.ws.id))

    def planned_rows(self, chunk: pd.DataFrame, plan: "ChunkPlan") -> tuple[pd.DataFrame, pd.Series]:
        """The chunk's rows planned in Python, and which of them were applied on their own
        (no other row of the file reached their customer) and warned of nothing: the rows
        whose fingerprints their contacts keep (unchanged.remember). The settled rows'
        fingerprints are written with them (set_based.py). In the row-by-row reference,
        which does not find that out, every row and none kept."""
        if self._settled is None:
            return chunk, pd.Series(False, index=chunk.index)
        rows = chunk[chunk["row"].isin(self._settled.to_plan)]
        return rows, ~rows["row"].isin(self._settled.related | {issue.row for issue in plan.warnings})

    def _is_related(self, row: int) -> bool:
        return self._settled is None or row in self._settled.related

    # ------------------------------------------------------------------ read + plan
    def plan(self, number: int, chunk: pd.DataFrame) -> ChunkPlan:
        """chunk `number` of the file, as normalised.read yields it."""
        plan = ChunkPlan(number=number)
        self._room = changes.SAMPLE_SIZE - len(self.sample) if self.sample is not None else 0
        settled_changes: list[dict] = []
        if self._settled is not None:
            for key, value in self._settled.counts.get(number, {}).items():
                plan.counts[key] += value
            plan.set_based = len(chunk)
            chunk = chunk[chunk["row"].isin(self._settled.to_plan)]
            plan.set_based -= len(chunk)
            plan.set_based_new = self._settled.new.get(number, 0)
            if self._room and plan.set_based_new:
                settled_changes = self._settled_new_changes(number)
        if chunk.empty:
            return self._sampled(plan, settled_changes)
        columns = list(chunk.columns)  # DataFrame.to_dict boxes every cell through pandas: 3x slower
        rows = [dict(zip(columns, values)) for values in zip(*(chunk[c].tolist() for c in columns))]
        for r in rows:
            r["tags"] = json.loads(r["tags"]) if r["tags"] is not None else None
            r["attributes"] = json.loads(r["attributes"]) if r["attributes"] is not None else None
        with self.conn.cursor() as cur:
            contacts = self._existing_contacts(cur, [r["user_id"] for r in rows])
            by_email = self._owners(cur, "email", {r["email"] for r in rows if r["email"]})
            by_phone = self._owners(cur, "phone", {r["phone"] for r in rows if r["phone"]})
            ids = {c[1] for c in contacts.values()} | set(by_email.values()) | set(by_phone.values())
            cur.execute("""SELECT id, name, email, phone, gender, to_char(birthday, 'YYYY-MM-DD'), attributes
                           FROM cdp.customers WHERE workspace_id = %s AND id = ANY(%s)""",
                        (self.ws.id, [i for i in ids if i > 0 and i not in self._carried]))
            customers = {r[0]: dict(zip(("name", "email", "phone", "gender", "birthday", "attributes"), r[1:]))
                         for r in cur.fetchall()}
        for i in ids & self._carried.keys():
            customers[i] = {**self._carried[i], "attributes": dict(self._carried[i]["attributes"])}
        self._resolve(rows, contacts, by_email, by_phone, customers, plan)
        for customer_id, customer in plan.carried.items():
            self._carry(customer_id, customer)
        return self._sampled(plan, settled_changes)

    def _sampled(self, plan: ChunkPlan, settled_changes: list[dict]) -> ChunkPlan:
        """The chunk's first changes in file order, of the rows the whole-file pass settled
        and of those planned here (each list in file order, up to the room left), added to
        the sample."""
        if self._room:
            plan.changes = changes.merged(settled_changes, plan.changes, size=self._room)
            self.sample.extend(plan.changes)
        return plan

    def _settled_new_changes(self, number: int) -> list[dict]:
        """The first new contacts of chunk `number` the whole-file pass settled, with their tags."""
        first = normalised.FIRST_LINE + number * self._chunk_rows
        with self.conn.cursor() as cur:
            cur.execute(f"SELECT row, user_id, tags FROM {set_based.TABLE} WHERE kind = 'new'"
                        " AND row BETWEEN %s AND %s ORDER BY row LIMIT %s",
                        (first, first + self._chunk_rows - 1, self._room))
            found = []
            for row, user_id, tags in cur.fetchall():
                found.append(changes.change(row, user_id, changes.NEW_CONTACT))
                if tags:
                    found.append(changes.change(row, user_id, changes.TAGS, "tags", added=sorted(set(tags))))
        return found

    def _owners(self, cur, key: str, values: set[str]) -> dict[str, int]:
        """The customer each email (phone) matches: the oldest one holding it."""
        cur.execute(f"SELECT {key}, min(id) FROM cdp.customers WHERE workspace_id = %s AND {key} = ANY(%s)"
                    f" GROUP BY {key}", (self.ws.id, list(values)))
        owners = dict(cur.fetchall())
        holding = self._holding[key]
        # dry run: where a carried customer holds the value or held it, the answer is worked out here
        unsure = {v for v, i in owners.items() if i in self._carried} | {v for v in values if holding.get(v)}
        if not unsure:
            return owners
        cur.execute(f"SELECT {key}, array_agg(id) FROM cdp.customers WHERE workspace_id = %s AND {key} = ANY(%s)"
                    f" GROUP BY {key}", (self.ws.id, list(unsure)))
        stored = dict(cur.fetchall())
        for value in unsure:
            candidates = [i for i in stored.get(value, ()) if i not in self._carried]
            candidates += holding.get(value, ())
            owners.pop(value, None)
            if candidates:  # new customers (negative placeholders) get ids after every stored one
                owners[value] = min(candidates, key=lambda i: (0, i) if i > 0 else (1, -i))
        return owners

    def _carry(self, customer_id: int, customer: dict) -> None:
        before = self._carried.get(customer_id)
        for key, holding in self._holding.items():
            if before is not None and before.get(key):
                holding[before[key]].discard(customer_id)
            if customer.get(key):
                holding.setdefault(customer[key], set()).add(customer_id)
        self._carried[customer_id] = {**customer, "attributes": dict(customer.get("attributes") or {})}

    def _existing_contacts(self, cur, user_ids: list[str]) -> dict[str, tuple[int, int, set[str]]]:
        cur.execute("""SELECT c.channel_user_id, c.id, c.customer_id,
                              coalesce(array_agg(t.name) FILTER (WHERE t.name IS NOT NULL), '{}')
                       FROM cdp.contacts c
                       LEFT JOIN cdp.contact_tags ct ON ct.contact_id = c.id
                       LEFT JOIN cdp.tags t ON t.id = ct.tag_id
                       WHERE c.workspace_id = %s AND c.channel = %s AND c.channel_user_id = ANY(%s)
                       GROUP BY c.id""", (self.ws.id, self.channel.name, user_ids))
        return {uid: (cid, cust, set(tags)) for uid, cid, cust, tags in cur.fetchall()}

    def _resolve(self, rows, contacts, by_email, by_phone, customers, plan: ChunkPlan) -> None:
        for r in rows:
            existing = contacts.get(r["user_id"])
            email_match = by_email.get(r["email"]) if r["email"] else None
            phone_match = by_phone.get(r["phone"]) if r["phone"] else None
            if existing:
                customer_id = existing[1]
                for via, match in (("email", email_match), ("phone", phone_match)):
                    if match is not None and match != customer_id:
                        plan.warnings.append(Issue("identity_conflict", r["row"], via, r[via], {"via": via}))
                        break
            else:
                customer_id = email_match or phone_match
                if customer_id is None:
                    customer_id = self._next_placeholder
                    self._next_placeholder -= 1
                    customers[customer_id] = {"attributes": {}}
                    plan.new_customers[customer_id] = customers[customer_id]
                    plan.counts["customers_created"] += 1
            # only related rows can share a customer; the others need no memory of it
            first = (self._first_row_of_customer.setdefault(customer_id, r["row"])
                     if self._is_related(r["row"]) else r["row"])
            if first != r["row"]:
                via = "email" if r["email"] and by_email.get(r["email"]) == customer_id else "phone"
                plan.warnings.append(Issue("profile_shared", r["row"], via, r.get(via) or "",
                                           {"other_row": first, "via": via}))
            # the sample's stored values: read before the row changes them (only while it has room)
            before = dict(customers[customer_id]) if len(plan.changes) < self._room else None
            changed = self._apply_profile(customers[customer_id], r)
            if self.dry_run and self._is_related(r["row"]):
                plan.carried[customer_id] = customers[customer_id]
            if changed and customer_id not in plan.new_customers:
                plan.changed_customers[customer_id] = customers[customer_id]
            for key, index in (("email", by_email), ("phone", by_phone)):
                if r[key]:
                    index.setdefault(r[key], customer_id)
            current = existing[2] if existing else set()
            wanted = self._wanted_tags(current, r["tags"])
            added, removed = wanted - current, current - wanted
            contact_id = existing[0] if existing else None
            plan.tag_changes += [(contact_id, r["user_id"], t, "add") for t in sorted(added)]
            plan.tag_changes += [(contact_id, r["user_id"], t, "remove") for t in sorted(removed)]
            plan.counts["tags_added"] += len(added)
            plan.counts["tags_removed"] += len(removed)
            if before is not None:
                plan.changes += _row_changes(r, existing is None, customer_id, before, customers[customer_id],
                                             added, removed)
            if existing is None:
                plan.new_contacts.append((r["user_id"], customer_id))
                contacts[r["user_id"]] = (None, customer_id, wanted)
                plan.counts["created"] += 1
            elif changed or added or removed:
                plan.counts["updated"] += 1
            else:
                plan.counts["unchanged"] += 1

    @staticmethod
    def _apply_profile(customer: dict, row: dict) -> bool:
        """Empty cells change nothing; a later row of the file overwrites an earlier one."""
        changed = False
        for key in PROFILE:
            if row[key] is not None and customer.get(key) != row[key]:
                customer[key] = row[key]
                changed = True
        if row["attributes"]:
            merged = {**(customer.get("attributes") or {}), **row["attributes"]}
            if merged != customer.get("attributes"):
                customer["attributes"] = merged
                changed = True
        return changed

    def _wanted_tags(self, current: set[str], tags: list[str] | None) -> set[str]:
        if self.tag_mode == "overwrite":
            return set(tags or ())
        return current | set(tags or ())

    # ------------------------------------------------------------------ write
    def write(self, plan: ChunkPlan) -> None:
        with self.conn.cursor() as cur:
            _create_stage_tables(cur)
            if plan.set_based_new:
                set_based.insert_new(cur, self.ws, self.channel, plan.number, self._chunk_rows)
            if plan.set_based > plan.set_based_new:
                set_based.remember_unchanged(cur, plan.number, self._chunk_rows)
            if plan.new_customers:
                cur.execute("SELECT nextval('cdp.customers_id_seq') FROM generate_series(1, %s)",
                            (len(plan.new_customers),))
                real_ids = dict(zip(plan.new_customers, (i for (i,) in cur.fetchall())))
            else:
                real_ids = {}
            rows = [(real_ids.get(cid, cid), cid in real_ids, c.get("name"), c.get("email"), c.get("phone"),
                     c.get("gender"), c.get("birthday"), json.dumps(c.get("attributes") or {}, ensure_ascii=False))
                    for cid, c in {**plan.changed_customers, **plan.new_customers}.items()]
            if rows:
                db.copy_rows(cur, "stage_customers", rows)
                cur.execute("""INSERT INTO cdp.customers (id, workspace_id, name, email, phone, gender, birthday,
                                   attributes)
                               SELECT id, %s, name, email, phone, gender, birthday, attributes
                               FROM stage_customers WHERE is_new""", (self.ws.id,))
                cur.execute("""UPDATE cdp.customers c SET name = s.name, email = s.email, phone = s.phone,
                                   gender = s.gender, birthday = s.birthday, attributes = s.attributes,
                                   updated_at = now()
                               FROM stage_customers s WHERE NOT s.is_new AND c.id = s.id
                                 AND c.workspace_id = %s""", (self.ws.id,))
            new_contact_ids = {}
            if plan.new_contacts:
                # ids taken up front, so the tag rows below name their contact without a join on user_id
                cur.execute("SELECT nextval('cdp.contacts_id_seq') FROM generate_series(1, %s)",
                            (len(plan.new_contacts),))
                new_contact_ids = {uid: i for (uid, _), (i,) in zip(plan.new_contacts, cur.fetchall())}
                db.copy_rows(cur, "stage_contacts", ((new_contact_ids[uid], uid, real_ids.get(cid, cid))
                                                  for uid, cid in plan.new_contacts))
                cur.execute("""INSERT INTO cdp.contacts (id, workspace_id, channel, channel_user_id, customer_id)
                               SELECT id, %s, %s, user_id, customer_id FROM stage_contacts""",
                            (self.ws.id, self.channel.name))
            if plan.tag_changes:
                db.copy_rows(cur, "stage_tags", ((contact_id or new_contact_ids[uid], tag, op)
                                              for contact_id, uid, tag, op in plan.tag_changes))
                cur.execute("""INSERT INTO cdp.tags (workspace_id, name)
                               SELECT DISTINCT %s, tag FROM stage_tags WHERE op = 'add'
                               ON CONFLICT (workspace_id, name) DO NOTHING""", (self.ws.id,))
                cur.execute("""INSERT INTO cdp.contact_tags (contact_id, tag_id)
                               SELECT s.contact_id, t.id FROM stage_tags s
                               JOIN cdp.tags t ON t.workspace_id = %s AND t.name = s.tag
                               WHERE s.op = 'add' ON CONFLICT DO NOTHING""", (self.ws.id,))
                cur.execute("""DELETE FROM cdp.contact_tags ct USING stage_tags s, cdp.tags t
                               WHERE s.op = 'remove' AND t.workspace_id = %s AND t.name = s.tag
                                 AND ct.contact_id = s.contact_id AND ct.tag_id = t.id""", (self.ws.id,))
        first = self._first_row_of_customer
        first.update({real_ids[k]: first.pop(k) for k in real_ids if k in first})


def _row_changes(r: dict, new_contact: bool, customer_id: int, before: dict, after: dict,
                 added: set[str], removed: set[str]) -> list[dict]:
    """What planning row `r` changed, for the preview's sample. A customer the file creates
    (a negative placeholder id) has no stored values: its contact's entry stands for them."""
    found = [changes.change(r["row"], r["user_id"], changes.NEW_CONTACT)] if new_contact else []
    if customer_id > 0:
        found += [changes.change(r["row"], r["user_id"], changes.FIELD, key, before.get(key), after.get(key))
                  for key in PROFILE if after.get(key) != before.get(key)]
        stored, now = before.get("attributes") or {}, after.get("attributes") or {}
        found += [changes.change(r["row"], r["user_id"], changes.ATTRIBUTE, key, stored.get(key), value)
                  for key, value in now.items() if stored.get(key) != value]
    if added or removed:
        found.append(changes.change(r["row"], r["user_id"], changes.TAGS, "tags", added=sorted(added),
                                    removed=sorted(removed)))
    return found


def _create_stage_tables(cur) -> None:
    cur.execute("""CREATE TEMP TABLE IF NOT EXISTS stage_customers (id bigint, is_new boolean, name text,
                       email text, phone text, gender text, birthday date, attributes jsonb)
                       ON COMMIT DELETE ROWS;
                   CREATE TEMP TABLE IF NOT EXISTS stage_contacts (id bigint, user_id text, customer_id bigint)
                       ON COMMIT DELETE ROWS;
                   CREATE TEMP TABLE IF NOT EXISTS stage_tags (contact_id bigint, tag text, op text)
                       ON COMMIT DELETE ROWS;
                   TRUNCATE stage_customers, stage_contacts, stage_tags;""")


def refresh_statistics(conn) -> None:
    """ANALYZE the tables an import grows. Statistics from when a table was small (or
    empty, after a preview's rollback) make the planner scan it whole for every row of
    a chunk's UPDATE: minutes per chunk instead of milliseconds."""
    with conn.cursor() as cur:
        cur.execute("ANALYZE cdp.customers, cdp.contacts, cdp.tags, cdp.contact_tags")


def counted_contacts(conn) -> float:
    """How many contacts the statistics last counted (all workspaces; 0 when never counted)."""
    with conn.cursor() as cur:
        cur.execute("SELECT greatest(reltuples, 0) FROM pg_class WHERE oid = 'cdp.contacts'::regclass")
        return cur.fetchone()[0]


def run(conn, ws: Workspace, channel: Channel, tag_mode: str, path, chunk_rows: int, *,
        start_after_chunk: int = -1, on_chunk: Callable[[int, pd.DataFrame, ChunkPlan], None] | None = None,
        should_stop: Callable[[], bool] = lambda: False, dry_run: bool = False,
        row_by_row: bool = False, sample: list[dict] | None = None) -> dict[str, int]:
    """Upsert the normalised file, committing chunk by chunk; or, with dry_run, only plan
    it (the preview: the same counts and warnings, nothing written). row_by_row plans
    every row in Python: the reference the set-based path is tested against. sample: a
    list the planner fills with the file's first changes (Upserter)."""
    totals = dict.fromkeys(COUNTS, 0)
    settled = None if row_by_row else set_based.prepare(conn, ws, channel, tag_mode, path, chunk_rows)
    upserter = Upserter(conn, ws, channel, tag_mode, settled, chunk_rows, dry_run=dry_run, sample=sample)
    counted = 0.0 if dry_run else counted_contacts(conn)
    for number, chunk in normalised.read_chunks(path, chunk_rows):
        if number <= start_after_chunk:
            # Committed before a restart: planned again but not written or counted, so that
            # the chunks after it see which row of the file first reached each customer, as
            # in a run from the start (their profile_shared warnings name that row).
            upserter.plan(number, chunk)
            continue
        if should_stop():
            raise Cancelled()
        plan = upserter.plan(number, chunk)
        for key in COUNTS:
            totals[key] += plan.counts[key]
        if dry_run:
            if on_chunk:
                on_chunk(number, chunk, plan)
            continue
        with conn.cursor() as cur:
            unchanged.applying(cur)
        upserter.write(plan)
        with conn.cursor() as cur:
            unchanged.forget_changed(cur, ws, plan)
            unchanged.remember(cur, ws, channel, *upserter.planned_rows(chunk, plan))
        # after chunks 0, 1, 3, 7, ...: whenever the tables may have doubled (not when a small
        # file joins large tables: analysing them costs a second or two, and changes nothing)
        if (number + 1) & number == 0 and (number + 1) * chunk_rows >= counted:
            refresh_statistics(conn)
        if on_chunk:
            on_chunk(number, chunk, plan)
        conn.commit()
    return totals
