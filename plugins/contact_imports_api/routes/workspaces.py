"""The workspaces imports go into, for choosing one (the page's drop-down) rather than
typing its slug; and what an unknown workspace is answered with."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from contact_import import db, workspaces
from contact_import.context import Context

from ..auth import Reader
from ..cdp import CDP
from ..schemas import WorkspaceList, errors

router = APIRouter(tags=["workspaces"])

NAMED = 10  # workspaces an unknown workspace's answer names


@router.get("/workspaces", response_model=WorkspaceList, summary="The workspaces, by slug",
            response_description="Every workspace.", responses=errors(401, 403, 503))
def list_workspaces(who: Reader, ctx: CDP) -> dict[str, Any]:
    """Whoever may read imports may list the workspaces they go into."""
    with db.transaction(ctx.cdp_url) as conn:
        found = workspaces.all_workspaces(conn)
    return {"workspaces": [{"slug": w.slug, "name": w.name, "omo_enabled": w.omo_enabled,
                            "default_region": w.default_region} for w in found]}


def unknown_workspace(ctx: Context, slug: str | None) -> str:
    """The answer to a workspace that does not exist: the ones that do, as a web user or a
    script can act on them (the library's message names a CLI command they may not have)."""
    with db.transaction(ctx.cdp_url) as conn:
        slugs = [w.slug for w in workspaces.all_workspaces(conn)]
    if not slugs:
        return f"no workspace {slug!r}: there are no workspaces yet; an administrator creates them"
    named = ", ".join(slugs[:NAMED]) + (f" and {len(slugs) - NAMED} more" if len(slugs) > NAMED else "")
    return f"no workspace {slug!r}: the workspaces are {named} (GET /workspaces lists them)"
