"""`contact-import workspace apply`: a workspace with its stores, teammates and attributes.

Applying the same file twice changes nothing; applying an edited file brings the
workspace to exactly what the file says (stores, teammates' stores and attributes
that the file no longer names are removed; teammates are deactivated, not deleted,
so their history stays).

Who may use a workspace is its file's `access` (docs/design.md#who-may-use-a-workspace):
Airflow users by name and roles of Airflow's auth manager. The entry points resolve the
caller (`User`); this module decides, in SQL, which workspaces that caller may use.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import Issue

ROLES = ("admin", "agent", "sales_rep", "sales_manager")
ATTRIBUTE_TYPES = ("text", "number", "date", "boolean", "select")
ACCESS_KEYS = ("users", "roles")
ADMIN_ROLE = "admin"  # Airflow's Admin role (SimpleAuthManager's ADMIN, FAB's Admin): every workspace


class WorkspaceFileError(ValueError):
    pass


class NotAllowed(PermissionError):
    """The workspace exists and the caller may not use it (code workspace_not_allowed)."""

    def __init__(self, user: str, workspace: str):
        super().__init__(Issue("workspace_not_allowed", params={"user": user, "workspace": workspace}).message())


@dataclass(frozen=True)
class User:
    """Who asks, as an entry point resolved them from Airflow's auth manager: the user's
    name and role names (compared in lower case). The library never asks Airflow itself."""

    name: str
    roles: frozenset[str] = frozenset()

    @classmethod
    def of(cls, name: str, roles=()) -> "User":
        return cls(name, frozenset(str(r).lower() for r in roles if r))

    @property
    def admin(self) -> bool:
        return ADMIN_ROLE in self.roles


@dataclass(frozen=True)
class Workspace:
    id: int
    slug: str
    name: str
    omo_enabled: bool
    default_region: str | None


@dataclass(frozen=True)
class Attribute:
    key: str
    label: str
    type: str
    options: tuple[str, ...] | None


def load_file(path: str | Path) -> dict[str, Any]:
    try:
        spec = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise WorkspaceFileError(f"{path}: {exc}") from None
    _check(spec, str(path))
    return spec


def _check(spec: Any, where: str) -> None:
    if not isinstance(spec, dict) or not spec.get("workspace"):
        raise WorkspaceFileError(f"{where}: needs a 'workspace' slug")
    region = spec.get("default_region")
    if region is not None and (not isinstance(region, str) or len(region) != 2):
        raise WorkspaceFileError(f"{where}: default_region must be a two-letter country code")
    store_codes = {str(s.get("code")) for s in spec.get("stores") or []}
    for t in spec.get("teammates") or []:
        if not t.get("email") or t.get("role") not in ROLES:
            raise WorkspaceFileError(f"{where}: teammate {t!r} needs an email and a role in {ROLES}")
        missing = set(map(str, t.get("stores") or [])) - store_codes
        if missing:
            raise WorkspaceFileError(f"{where}: teammate {t['email']} names unknown stores {sorted(missing)}")
    access = spec.get("access")
    if access is not None:
        if not isinstance(access, dict) or set(access) - set(ACCESS_KEYS):
            raise WorkspaceFileError(f"{where}: access must be a mapping of {' and '.join(ACCESS_KEYS)}")
        for key in ACCESS_KEYS:
            names = access.get(key) or []
            if not isinstance(names, list) or not all(isinstance(n, str) and n.strip() for n in names):
                raise WorkspaceFileError(f"{where}: access {key} must be a list of names")
    for a in spec.get("attributes") or []:
        if not a.get("key") or a.get("type") not in ATTRIBUTE_TYPES:
            raise WorkspaceFileError(f"{where}: attribute {a!r} needs a key and a type in {ATTRIBUTE_TYPES}")
        if a["type"] == "select" and not a.get("options"):
            raise WorkspaceFileError(f"{where}: select attribute {a['key']} needs options")


def apply(conn, spec: dict[str, Any]) -> Workspace:
    """Create or update the workspace described by `spec` (in the caller's transaction)."""
    _check(spec, spec.get("workspace", "workspace"))
    with conn.cursor() as cur:
        cur.execute(
            """INSERT INTO cdp.workspaces (slug, name, omo_enabled, default_region, access_users, access_roles)
               VALUES (%s, %s, %s, %s, %s, %s)
               ON CONFLICT (slug) DO UPDATE SET name = EXCLUDED.name,
                   omo_enabled = EXCLUDED.omo_enabled, default_region = EXCLUDED.default_region,
                   access_users = EXCLUDED.access_users, access_roles = EXCLUDED.access_roles,
                   updated_at = now()
               WHERE (cdp.workspaces.name, cdp.workspaces.omo_enabled, cdp.workspaces.default_region,
                      cdp.workspaces.access_users, cdp.workspaces.access_roles)
                     IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.omo_enabled, EXCLUDED.default_region,
                                       EXCLUDED.access_users, EXCLUDED.access_roles)""",
            (spec["workspace"], spec.get("name") or spec["workspace"], bool(spec.get("omo")),
             (spec.get("default_region") or None) and spec["default_region"].upper(), *_access(spec)),
        )
        ws = get(conn, spec["workspace"])
        stores = spec.get("stores") or []
        cur.execute(
            """INSERT INTO cdp.stores (workspace_id, code, name)
               SELECT %s, s->>'code', s->>'name' FROM jsonb_array_elements(%s::jsonb) s
               ON CONFLICT (workspace_id, code) DO UPDATE SET name = EXCLUDED.name
               WHERE cdp.stores.name IS DISTINCT FROM EXCLUDED.name""",
            (ws.id, json.dumps([{"code": str(s["code"]), "name": str(s.get("name") or s["code"])} for s in stores])),
        )
        cur.execute("DELETE FROM cdp.stores WHERE workspace_id = %s AND NOT code = ANY(%s)",
                    (ws.id, [str(s["code"]) for s in stores]))
        teammates = spec.get("teammates") or []
        cur.execute(
            """INSERT INTO cdp.teammates (workspace_id, email, name, role, active)
               SELECT %s, t->>'email', t->>'name', t->>'role', (t->>'active')::boolean
               FROM jsonb_array_elements(%s::jsonb) t
               ON CONFLICT (workspace_id, lower(email)) DO UPDATE SET email = EXCLUDED.email,
                   name = EXCLUDED.name, role = EXCLUDED.role, active = EXCLUDED.active
               WHERE (cdp.teammates.email, cdp.teammates.name, cdp.teammates.role, cdp.teammates.active)
                     IS DISTINCT FROM (EXCLUDED.email, EXCLUDED.name, EXCLUDED.role, EXCLUDED.active)""",
            (ws.id, json.dumps([{"email": t["email"], "name": t.get("name"), "role": t["role"],
                                  "active": bool(t.get("active", True))} for t in teammates])),
        )
        cur.execute("UPDATE cdp.teammates SET active = false WHERE workspace_id = %s AND active"
                    " AND NOT lower(email) = ANY(%s)", (ws.id, [t["email"].lower() for t in teammates]))
        links = [{"email": t["email"].lower(), "store": str(code)}
                 for t in teammates for code in t.get("stores") or []]
        cur.execute(
            """WITH wanted AS (
                   SELECT tm.id AS teammate_id, st.id AS store_id
                   FROM jsonb_array_elements(%(links)s::jsonb) l
                   JOIN cdp.teammates tm ON tm.workspace_id = %(ws)s AND lower(tm.email) = l->>'email'
                   JOIN cdp.stores st ON st.workspace_id = %(ws)s AND st.code = l->>'store'),
               removed AS (
                   DELETE FROM cdp.teammate_stores ts USING cdp.teammates tm
                   WHERE ts.teammate_id = tm.id AND tm.workspace_id = %(ws)s
                     AND (ts.teammate_id, ts.store_id) NOT IN (SELECT teammate_id, store_id FROM wanted))
               INSERT INTO cdp.teammate_stores SELECT * FROM wanted ON CONFLICT DO NOTHING""",
            {"ws": ws.id, "links": json.dumps(links)},
        )
        attributes = spec.get("attributes") or []
        cur.execute(
            """INSERT INTO cdp.attribute_definitions (workspace_id, key, label, type, options)
               SELECT %s, a->>'key', a->>'label', a->>'type', a->'options'
               FROM jsonb_array_elements(%s::jsonb) a
               ON CONFLICT (workspace_id, key) DO UPDATE SET label = EXCLUDED.label,
                   type = EXCLUDED.type, options = EXCLUDED.options
               WHERE (cdp.attribute_definitions.label, cdp.attribute_definitions.type,
                      cdp.attribute_definitions.options)
                     IS DISTINCT FROM (EXCLUDED.label, EXCLUDED.type, EXCLUDED.options)""",
            (ws.id, json.dumps([{"key": a["key"], "label": a.get("label") or a["key"], "type": a["type"],
                                  "options": [str(o) for o in a["options"]] if a.get("options") else None}
                                 for a in attributes])),
        )
        cur.execute("DELETE FROM cdp.attribute_definitions WHERE workspace_id = %s AND NOT key = ANY(%s)",
                    (ws.id, [a["key"] for a in attributes]))
    return ws


def _access(spec: dict[str, Any]) -> tuple[list[str] | None, list[str] | None]:
    """The file's access as stored: (users, roles), both None when the file has no `access`
    (open); roles in lower case."""
    access = spec.get("access")
    if access is None:
        return None, None
    return (sorted({n.strip() for n in access.get("users") or []}),
            sorted({n.strip().lower() for n in access.get("roles") or []}))


# The one rule of who may use a workspace (alias w): open, or the caller is an admin, is
# named, or has a named role.
_MAY_USE = ("(w.access_users IS NULL OR %(admin)s OR %(user)s = ANY(w.access_users)"
            " OR w.access_roles && %(roles)s::text[])")


def _caller(user: User) -> dict[str, Any]:
    return {"admin": user.admin, "user": user.name, "roles": sorted(user.roles)}


def usable(conn, user: User) -> list[Workspace]:
    """The workspaces `user` may use, by slug."""
    with conn.cursor() as cur:
        cur.execute("SELECT id, slug, name, omo_enabled, default_region FROM cdp.workspaces w"
                    f" WHERE {_MAY_USE} ORDER BY slug", _caller(user))
        return [Workspace(*row) for row in cur.fetchall()]


def get_usable(conn, slug: str, user: User) -> Workspace:
    """The workspace `slug` if `user` may use it; LookupError when there is none, NotAllowed
    when the user may not use it."""
    ws = get(conn, slug)
    with conn.cursor() as cur:
        cur.execute(f"SELECT {_MAY_USE} FROM cdp.workspaces w WHERE w.id = %(id)s", {**_caller(user), "id": ws.id})
        if not cur.fetchone()[0]:
            raise NotAllowed(user.name, slug)
    return ws


def get(conn, slug: str) -> Workspace:
    with conn.cursor() as cur:
        cur.execute("SELECT id, slug, name, omo_enabled, default_region FROM cdp.workspaces WHERE slug = %s",
                    (slug,))
        row = cur.fetchone()
    if row is None:
        raise LookupError(f"no workspace {slug!r}; create it with `contact-import workspace apply FILE.yaml`")
    return Workspace(*row)


def all_workspaces(conn) -> list[Workspace]:
    """Every workspace, by slug."""
    with conn.cursor() as cur:
        cur.execute("SELECT id, slug, name, omo_enabled, default_region FROM cdp.workspaces ORDER BY slug")
        return [Workspace(*row) for row in cur.fetchall()]


def attributes(conn, workspace_id: int) -> list[Attribute]:
    with conn.cursor() as cur:
        cur.execute("SELECT key, label, type, options FROM cdp.attribute_definitions"
                    " WHERE workspace_id = %s ORDER BY id", (workspace_id,))
        return [Attribute(k, l, t, tuple(o) if o else None) for k, l, t, o in cur.fetchall()]


def teammate_emails(conn, workspace_id: int) -> list[str]:
    with conn.cursor() as cur:
        cur.execute("SELECT email FROM cdp.teammates WHERE workspace_id = %s ORDER BY lower(email)", (workspace_id,))
        return [e for (e,) in cur.fetchall()]


def store_codes(conn, workspace_id: int) -> list[str]:
    with conn.cursor() as cur:
        cur.execute("SELECT code FROM cdp.stores WHERE workspace_id = %s ORDER BY code", (workspace_id,))
        return [c for (c,) in cur.fetchall()]
