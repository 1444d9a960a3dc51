"""OMO bindings: checking them against the workspace, and applying them set-based."""
from __future__ import annotations

from typing import Callable

import pandas as pd

from . import db, normalised
from .channels import Channel
from .errors import Issue
from .workspaces import Workspace

UNASSIGNED = "UNASSIGNED"
BINDABLE_ROLES = ("sales_rep", "sales_manager")


def check(conn, ws: Workspace, channel: Channel, normalised: pd.DataFrame, headers: dict[str, str]) -> list[Issue]:
    """Binding rules that need the workspace (docs/design.md#omo-bindings)."""
    teammate = normalised["binding_teammate"]
    store = normalised["store_code"]
    rows = normalised[teammate.notna() & store.notna() & (teammate != UNASSIGNED)]
    has_binding = teammate.notna() | store.notna()
    assigned = normalised[has_binding]
    header_t = headers.get("binding_teammate", "Binding Teammate")
    header_s = headers.get("store_code", "Store Location Code")
    if assigned.empty:
        return []
    incomplete = normalised[has_binding & (teammate.isna() | (store.isna() & (teammate != UNASSIGNED)))]
    # reported on the empty cell: that is the one to fill in
    issues = [Issue("binding_incomplete", int(r), header_s if isinstance(t, str) else header_t, "")
              for r, t, s in zip(incomplete["row"], incomplete["binding_teammate"], incomplete["store_code"])]
    if not channel.omo_binding:
        return issues + [Issue("binding_not_supported", int(r), header_t, v or "", {"channel": channel.label})
                         for r, v in zip(assigned["row"], assigned["binding_teammate"])]
    if not ws.omo_enabled:
        return issues + [Issue("omo_not_enabled", int(r), header_t, v or "")
                         for r, v in zip(assigned["row"], assigned["binding_teammate"])]
    with conn.cursor() as cur:
        cur.execute("""SELECT lower(t.email), t.active, t.role,
                              coalesce(array_agg(s.code) FILTER (WHERE s.code IS NOT NULL), '{}')
                       FROM cdp.teammates t
                       LEFT JOIN cdp.teammate_stores ts ON ts.teammate_id = t.id
                       LEFT JOIN cdp.stores s ON s.id = ts.store_id
                       WHERE t.workspace_id = %s GROUP BY t.id""", (ws.id,))
        teammates = {email: (active, role, set(codes)) for email, active, role, codes in cur.fetchall()}
        cur.execute("SELECT code FROM cdp.stores WHERE workspace_id = %s", (ws.id,))
        stores = {code for (code,) in cur.fetchall()}
    for row, email, code in zip(rows["row"], rows["binding_teammate"], rows["store_code"]):
        row = int(row)
        found = teammates.get(email.lower())
        if found is None:
            issues.append(Issue("teammate_not_found", row, header_t, email))
        elif not found[0]:
            issues.append(Issue("teammate_inactive", row, header_t, email))
        elif found[1] not in BINDABLE_ROLES:
            issues.append(Issue("teammate_role_not_bindable", row, header_t, email))
        elif code not in stores:
            issues.append(Issue("store_not_found", row, header_s, code))
        elif code not in found[2]:
            issues.append(Issue("teammate_not_in_store", row, header_s, code, {"teammate": email}))
    return issues


COLUMNS = ("user_id", "binding_teammate", "store_code")  # of the normalised file, all apply needs


def _stage(cur, rows: pd.DataFrame) -> None:
    cur.execute("CREATE TEMP TABLE IF NOT EXISTS stage_bindings"
                " (user_id text, teammate text, store_code text) ON COMMIT DELETE ROWS")
    cur.execute("TRUNCATE stage_bindings")
    db.copy_rows(cur, "stage_bindings", rows[list(COLUMNS)].itertuples(index=False))


def apply(conn, ws: Workspace, channel: Channel, rows: pd.DataFrame) -> dict[str, int]:
    """Bind, rebind or unbind the contacts of `rows` (columns user_id, binding_teammate, store_code).

    Idempotent: a binding that already holds is not rewritten and not counted.
    """
    rows = rows[rows["binding_teammate"].notna()]
    if rows.empty:
        return {"bound": 0, "unbound": 0}
    with conn.cursor() as cur:
        _stage(cur, rows)
        cur.execute("""DELETE FROM cdp.bindings b USING stage_bindings s, cdp.contacts c
                       WHERE s.teammate = %s AND c.workspace_id = %s AND c.channel = %s
                         AND c.channel_user_id = s.user_id AND b.contact_id = c.id""",
                    (UNASSIGNED, ws.id, channel.name))
        unbound = cur.rowcount
        cur.execute("""INSERT INTO cdp.bindings (contact_id, teammate_id, store_id)
                       SELECT c.id, t.id, st.id FROM stage_bindings s
                       JOIN cdp.contacts c ON c.workspace_id = %(ws)s AND c.channel = %(ch)s
                                          AND c.channel_user_id = s.user_id
                       JOIN cdp.teammates t ON t.workspace_id = %(ws)s AND lower(t.email) = lower(s.teammate)
                       JOIN cdp.stores st ON st.workspace_id = %(ws)s AND st.code = s.store_code
                       WHERE s.teammate <> %(unassigned)s
                       ON CONFLICT (contact_id) DO UPDATE
                         SET teammate_id = EXCLUDED.teammate_id, store_id = EXCLUDED.store_id, updated_at = now()
                       WHERE (cdp.bindings.teammate_id, cdp.bindings.store_id)
                             IS DISTINCT FROM (EXCLUDED.teammate_id, EXCLUDED.store_id)""",
                    {"ws": ws.id, "ch": channel.name, "unassigned": UNASSIGNED})
        bound = cur.rowcount
    return {"bound": bound, "unbound": unbound}


def apply_file(conn, ws: Workspace, channel: Channel, path, chunk_rows: int, action=apply,
               on_progress: Callable[[int], None] | None = None) -> dict[str, int]:
    """Apply (or, with `count_changes`, count) the bindings of a normalised file, chunk by
    chunk; on_progress(rows) after each chunk: the file's rows done so far."""
    totals = {"bound": 0, "unbound": 0}
    done = 0
    for chunk in normalised.read(path, chunk_rows, COLUMNS):
        for key, value in action(conn, ws, channel, chunk).items():
            totals[key] += value
        done += len(chunk)
        if on_progress is not None:
            on_progress(done)
    return totals


def count_changes(conn, ws: Workspace, channel: Channel, rows: pd.DataFrame) -> dict[str, int]:
    """What `apply` would count once the rows' contacts exist, without writing: the preview.

    A contact the import is about to create has no binding yet."""
    rows = rows[rows["binding_teammate"].notna()]
    if rows.empty:
        return {"bound": 0, "unbound": 0}
    with conn.cursor() as cur:
        _stage(cur, rows)
        cur.execute("""SELECT count(*) FILTER (WHERE s.teammate = %(unassigned)s AND b.contact_id IS NOT NULL),
                              count(*) FILTER (WHERE s.teammate <> %(unassigned)s AND t.id IS NOT NULL
                                               AND st.id IS NOT NULL
                                               AND (b.teammate_id, b.store_id) IS DISTINCT FROM (t.id, st.id))
                       FROM stage_bindings s
                       LEFT JOIN cdp.contacts c ON c.workspace_id = %(ws)s AND c.channel = %(ch)s
                                               AND c.channel_user_id = s.user_id
                       LEFT JOIN cdp.bindings b ON b.contact_id = c.id
                       LEFT JOIN cdp.teammates t ON t.workspace_id = %(ws)s AND lower(t.email) = lower(s.teammate)
                       LEFT JOIN cdp.stores st ON st.workspace_id = %(ws)s AND st.code = s.store_code""",
                    {"ws": ws.id, "ch": channel.name, "unassigned": UNASSIGNED})
        unbound, bound = cur.fetchone()
    return {"bound": bound, "unbound": unbound}


def sample_changes(conn, ws: Workspace, channel: Channel, rows: pd.DataFrame, limit: int) -> list[dict]:
    """The first `limit` of the binding changes count_changes counts, in file order (`rows`
    need their file line, `row`): the preview's sample. Each names the binding as stored
    (`teammate (store)`, None for none or a contact the import creates) and as the row sets
    it (None to unbind)."""
    from .changes import BINDING, change

    rows = rows[rows["binding_teammate"].notna()]
    if rows.empty or limit <= 0:
        return []
    with conn.cursor() as cur:
        cur.execute("CREATE TEMP TABLE IF NOT EXISTS stage_binding_rows"
                    " (row int, user_id text, teammate text, store_code text) ON COMMIT DELETE ROWS")
        cur.execute("TRUNCATE stage_binding_rows")
        db.copy_rows(cur, "stage_binding_rows", rows[["row", *COLUMNS]].itertuples(index=False))
        cur.execute("""SELECT s.row, s.user_id, bt.email, bs.code, s.teammate, s.store_code
                       FROM stage_binding_rows s
                       LEFT JOIN cdp.contacts c ON c.workspace_id = %(ws)s AND c.channel = %(ch)s
                                               AND c.channel_user_id = s.user_id
                       LEFT JOIN cdp.bindings b ON b.contact_id = c.id
                       LEFT JOIN cdp.teammates bt ON bt.id = b.teammate_id
                       LEFT JOIN cdp.stores bs ON bs.id = b.store_id
                       LEFT JOIN cdp.teammates t ON t.workspace_id = %(ws)s AND lower(t.email) = lower(s.teammate)
                       LEFT JOIN cdp.stores st ON st.workspace_id = %(ws)s AND st.code = s.store_code
                       WHERE (s.teammate = %(unassigned)s AND b.contact_id IS NOT NULL)
                          OR (s.teammate <> %(unassigned)s AND t.id IS NOT NULL AND st.id IS NOT NULL
                              AND (b.teammate_id, b.store_id) IS DISTINCT FROM (t.id, st.id))
                       ORDER BY s.row LIMIT %(limit)s""",
                    {"ws": ws.id, "ch": channel.name, "unassigned": UNASSIGNED, "limit": limit})
        found = cur.fetchall()
    return [change(row, user_id, BINDING, "binding", f"{old_t} ({old_s})" if old_t else None,
                   None if teammate == UNASSIGNED else f"{teammate} ({store})")
            for row, user_id, old_t, old_s, teammate, store in found]


def sample_file(conn, ws: Workspace, channel: Channel, path, chunk_rows: int, limit: int) -> list[dict]:
    """The first `limit` binding changes of a normalised file (sample_changes), reading it
    only until they are found."""
    found: list[dict] = []
    for chunk in normalised.read(path, chunk_rows, ("row", *COLUMNS)):
        found += sample_changes(conn, ws, channel, chunk, limit - len(found))
        if len(found) >= limit:
            break
    return found
