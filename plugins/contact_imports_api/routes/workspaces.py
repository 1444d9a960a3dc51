"""The workspaces imports go into, for choosing one (the page's drop-down) rather than
typing its slug; and what an unknown workspace, or one the caller may not use, is answered
with: the caller sees only the workspaces their access lets them use (docs/design.md#who-may-use-a-workspace)."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, status

from contact_import import db, workspaces
from contact_import.context import Context

from ..auth import Caller, Reader
from ..cdp import CDP
from ..schemas import WorkspaceList, errors

router = APIRouter(tags=["workspaces"])

NAMED = 10  # workspaces an unknown workspace's answer names


@router.get("/workspaces", response_model=WorkspaceList, summary="The workspaces the caller may use, by slug",
            response_description="The workspaces the caller may use.", responses=errors(401, 403, 503))
def list_workspaces(who: Reader, ctx: CDP) -> dict[str, Any]:
    """Whoever may read imports may list the workspaces they may use: those open to all,
    those whose access names them or one of their roles; an admin, every one."""
    with db.transaction(ctx.cdp_url) as conn:
        found = workspaces.usable(conn, who.access)
    return {"workspaces": [{"slug": w.slug, "name": w.name, "omo_enabled": w.omo_enabled,
                            "default_region": w.default_region} for w in found]}


def unknown_workspace(ctx: Context, slug: str | None, who: Caller) -> str:
    """The answer to a workspace that does not exist: the ones the caller may use, as a web
    user or a script can act on them (the library's message names a CLI command they may not have)."""
    with db.transaction(ctx.cdp_url) as conn:
        slugs = [w.slug for w in workspaces.usable(conn, who.access)]
    if not slugs:
        return f"no workspace {slug!r}: there are no workspaces you may use; an administrator creates them"
    named = ", ".join(slugs[:NAMED]) + (f" and {len(slugs) - NAMED} more" if len(slugs) > NAMED else "")
    return f"no workspace {slug!r}: the workspaces you may use are {named} (GET /workspaces lists them)"


def not_allowed(exc: workspaces.NotAllowed) -> HTTPException:
    """A workspace the caller names and may not use: 403. Its slug is no secret (the
    caller typed it); an import in it is answered as missing (imports.stored_record)."""
    return HTTPException(status.HTTP_403_FORBIDDEN, str(exc))


def workspace_for(conn, ctx: Context, slug: str, who: Caller, missing: int) -> workspaces.Workspace:
    """The workspace `slug` for `who`: the status `missing` naming the workspaces they may
    use when there is none, 403 when they may not use it."""
    try:
        return workspaces.get_usable(conn, slug, who.access)
    except workspaces.NotAllowed as exc:
        raise not_allowed(exc) from None
    except LookupError:
        raise HTTPException(missing, unknown_workspace(ctx, slug, who)) from None
