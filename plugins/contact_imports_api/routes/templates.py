"""The sample file of a channel and tag mode, with a workspace's own attributes as columns."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response, status

from contact_import import db, sample_file, workspaces
from contact_import.channels import CHANNELS, TAG_MODES

from ..auth import Reader
from ..cdp import CDP
from ..schemas import errors
from .workspaces import workspace_for

router = APIRouter(tags=["templates"])


@router.get("/templates/{channel}.csv", summary="The sample file of a channel and tag mode",
            response_class=Response,
            responses={200: {"content": {"text/csv": {}}, "description": "A header and example rows (UTF-8 with BOM)."},
                       **errors(401, 403, 404, 422, 503)})
def template(channel: Annotated[str, Path(description="The channel whose User ID column the file starts with.",
                                          json_schema_extra={"enum": list(CHANNELS)})], who: Reader, ctx: CDP,
             tag_mode: Annotated[str, Query(description="The tag mode the example rows show: `append` (Tags lists"
                                                        " tags to add) or `overwrite` (the complete tag list;"
                                                        " an empty cell removes every tag).",
                                            json_schema_extra={"enum": list(TAG_MODES)})] = "append",
             workspace: Annotated[str | None, Query(description="Adds this workspace's attributes as columns"
                                                                " (403 for one the caller may not use).")]
             = None) -> Response:
    if channel not in CHANNELS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no channel {channel!r}; channels: {', '.join(CHANNELS)}")
    if tag_mode not in TAG_MODES:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"tag_mode must be one of {', '.join(TAG_MODES)}")
    if workspace:
        with db.transaction(ctx.cdp_url) as conn:
            ws = workspace_for(conn, ctx, workspace, who, status.HTTP_404_NOT_FOUND)
            text = sample_file.render(channel, tag_mode, ws, workspaces.attributes(conn, ws.id))
    else:
        text = sample_file.render(channel, tag_mode)
    return Response(text.encode("utf-8-sig"), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{channel}-{tag_mode}.csv"'})
