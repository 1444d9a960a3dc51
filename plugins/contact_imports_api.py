"""The upload API (SPEC section 6): a FastAPI app the Airflow API server mounts at /contact-imports.

Authentication and authorisation are Airflow's: the caller's JWT (from /auth/token, or
the UI's session cookie) is checked by Airflow's auth manager, and what a user may do
follows what they may do with the `contact_import` DAG's runs (read: list and read
imports; trigger: upload and cancel). A new import is a DAG run triggered through
Airflow's own REST API with the caller's token, so Airflow checks that too.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, status
from airflow.sdk import ObjectStoragePath
from fastapi.responses import HTMLResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from python_multipart.multipart import MultipartParser, parse_options_header

from contact_import import config, db, jobs, pipeline, storage, templates, workspaces
from contact_import.channels import CHANNELS, TAG_MODES
from contact_import.errors import normalise_lang

storage.use(ObjectStoragePath)  # uploads and reports through Airflow's object storage

DAG_ID = "contact_import"
API_PREFIX = "/api/v1"

app = FastAPI(title="Contact imports", version="1", docs_url="/docs", openapi_url="/openapi.json",
              description="Upload social contact files into the CDP; each upload is one `contact_import` DAG run.")
router = APIRouter(prefix=API_PREFIX)
bearer = HTTPBearer(auto_error=False)


# ---------------------------------------------------------------- who is calling
@dataclass
class Caller:
    user: Any
    token: str


async def caller(request: Request,
                 credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Caller:
    """The user behind the request's JWT; 401 when there is none or it is not valid."""
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
    from airflow.api_fastapi.core_api.security import get_user

    try:
        user = await get_user(request, None, credentials)
    except HTTPException as exc:  # Airflow answers a forged token with 403; it is not a known caller
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"not authenticated: {exc.detail}",
                            headers={"WWW-Authenticate": "Bearer"}) from None
    token = credentials.credentials if credentials else request.cookies.get(COOKIE_NAME_JWT_TOKEN, "")
    return Caller(user, token)


def _may(who: Caller, method: str) -> None:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    if not get_auth_manager().is_authorized_dag(method=method, access_entity=DagAccessEntity.RUN,
                                                details=DagDetails(id=DAG_ID), user=who.user):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"not allowed to {method} runs of DAG {DAG_ID}")


async def reader(who: Annotated[Caller, Depends(caller)]) -> Caller:
    _may(who, "GET")
    return who


async def writer(who: Annotated[Caller, Depends(caller)]) -> Caller:
    _may(who, "POST")
    return who


Reader = Annotated[Caller, Depends(reader)]
Writer = Annotated[Caller, Depends(writer)]


# ---------------------------------------------------------------- streaming upload
class UploadTooLarge(Exception):
    pass


async def receive_form(request: Request, import_id: str) -> tuple[dict[str, str], Path | None, str, str]:
    """Parse a multipart body as it streams in: the form fields, and the `file` part written
    straight to storage, its size checked on every block. Returns (fields, stored path,
    original file name, SHA-256)."""
    limit = config.max_upload_mb() * 2**20
    kind, options = parse_options_header(request.headers.get("content-type", ""))
    if kind != b"multipart/form-data" or b"boundary" not in options:
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "send multipart/form-data")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + 64 * 1024:  # form fields are small
        raise UploadTooLarge()
    fields: dict[str, str] = {}
    state: dict[str, Any] = {"header": b"", "value": b"", "headers": {}, "name": None, "data": bytearray()}
    upload: dict[str, Any] = {"path": None, "file": None, "name": "", "size": 0, "sha": hashlib.sha256()}

    def on_part_begin() -> None:
        state.update(headers={}, name=None, data=bytearray())

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["header"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["value"] += data[start:end]

    def on_header_end() -> None:
        state["headers"][state["header"].decode("latin-1").lower()] = state["value"]
        state.update(header=b"", value=b"")

    def on_headers_finished() -> None:
        _, disposition = parse_options_header(state["headers"].get("content-disposition", b""))
        state["name"] = disposition.get(b"name", b"").decode()
        if state["name"] == "file":
            upload["name"] = disposition.get(b"filename", b"upload.csv").decode("utf-8", "replace")
            upload["path"] = pipeline.upload_path(import_id, upload["name"])
            upload["file"] = upload["path"].open("wb")

    def on_part_data(data: bytes, start: int, end: int) -> None:
        block = data[start:end]
        if state["name"] == "file":
            upload["size"] += len(block)
            if upload["size"] > limit:
                raise UploadTooLarge()
            upload["sha"].update(block)
            upload["file"].write(block)
        else:
            state["data"] += block
            if len(state["data"]) > 64 * 1024:
                raise HTTPException(status.HTTP_400_BAD_REQUEST, f"form field {state['name']} is too long")

    def on_part_end() -> None:
        if state["name"] == "file":
            upload["file"].close()
        elif state["name"]:
            fields[state["name"]] = state["data"].decode("utf-8", "replace")

    parser = MultipartParser(options[b"boundary"], callbacks={
        "on_part_begin": on_part_begin, "on_header_field": on_header_field, "on_header_value": on_header_value,
        "on_header_end": on_header_end, "on_headers_finished": on_headers_finished,
        "on_part_data": on_part_data, "on_part_end": on_part_end})
    try:
        async for block in request.stream():
            parser.write(block)
        parser.finalize()
    finally:
        if upload["file"] is not None and not upload["file"].closed:
            upload["file"].close()
    return fields, upload["path"], upload["name"], upload["sha"].hexdigest()


# ---------------------------------------------------------------- Airflow's REST API
def _airflow_url(request: Request) -> str:
    return (os.environ.get("AIRFLOW_API_URL") or f"{request.url.scheme}://{request.url.netloc}").rstrip("/")


async def _airflow(request: Request, who: Caller, method: str, path: str, body: dict | None) -> dict:
    # Reads and the idempotent state change are retried when Airflow answers 5xx (a busy
    # metadata database); a trigger is not, since a retry could start a second run.
    attempts = 3 if method in ("GET", "PATCH") else 1
    async with httpx.AsyncClient(base_url=_airflow_url(request), timeout=30) as client:
        for attempt in range(attempts):
            response = await client.request(method, f"/api/v2/dags/{DAG_ID}/{path}", json=body,
                                            headers={"Authorization": f"Bearer {who.token}"})
            if response.status_code < 500:
                break
            await asyncio.sleep(1 + attempt)
    if response.status_code >= 400:
        raise HTTPException(response.status_code if response.status_code in (403, 404, 409) else 502,
                            f"Airflow answered {response.status_code}: {response.text[:500]}")
    return response.json()


# ---------------------------------------------------------------- routes
def _url() -> str:
    return db.resolve_url()


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


@router.post("/imports", status_code=status.HTTP_202_ACCEPTED, summary="Upload a file: one import, one DAG run")
async def upload(request: Request, who: Writer) -> dict:
    """multipart/form-data: `file`, `workspace`, `channel`, `tag_mode`, optional `mapping` (JSON),
    `require_approval`. 413 when the file is larger than CONTACT_IMPORT_MAX_UPLOAD_MB."""
    import_id = str(uuid.uuid4())
    try:
        try:
            fields, stored, file_name, sha = await receive_form(request, import_id)
        except UploadTooLarge:
            raise HTTPException(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
                                f"the file is larger than {config.max_upload_mb()} MiB") from None
        if stored is None:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, "the form has no file")
        missing = [f for f in ("workspace", "channel") if not fields.get(f)]
        if missing:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, f"missing form fields: {', '.join(missing)}")
        try:
            mapping = json.loads(fields["mapping"]) if fields.get("mapping") else None
        except json.JSONDecodeError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, f"mapping is not JSON: {exc}") from None
        options = {"workspace": fields["workspace"], "channel": fields["channel"],
                   "tag_mode": fields.get("tag_mode") or "append", "mapping": mapping,
                   "require_approval": _flag(fields.get("require_approval"))}
        try:
            pipeline.record_upload(_url(), import_id=import_id, stored=stored, sha256=sha, file_name=file_name,
                                   **options)
        except LookupError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc).strip("'\"")) from None
        except ValueError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from None
    except BaseException:
        storage.remove_tree(storage.import_folder(import_id))  # nothing is kept of a refused upload
        raise
    conf = {**options, "mapping": mapping or {}, "file": str(stored), "import_id": import_id}
    try:
        run = await _airflow(request, who, "POST", "dagRuns", {"logical_date": None, "conf": conf})
    except HTTPException as exc:
        with db.transaction(_url()) as conn:
            jobs.set_status(conn, import_id, jobs.FAILED, message=f"could not start the DAG run: {exc.detail}")
        raise
    pipeline.record_run(_url(), import_id, run["dag_run_id"])
    return _one(import_id)


async def follow_runs(request: Request, who: Caller, records: list[dict]) -> list[dict]:
    """Statuses follow the DAG runs: an unfinished import whose run Airflow has ended as
    failed (marked failed in the UI while queued, say) is cancelled; its tasks never ran,
    or were stopped."""
    followed = []
    for record in records:
        if record["status"] not in jobs.FINISHED and record.get("dag_run_id"):
            try:
                run = await _airflow(request, who, "GET", f"dagRuns/{record['dag_run_id']}", None)
            except HTTPException:
                run = {}
            if run.get("state") == "failed":
                with db.transaction(_url()) as conn:
                    try:
                        jobs.cancel(conn, record["id"], "its DAG run was marked failed in Airflow")
                    except jobs.AlreadyFinished:
                        pass
                record = _one(record["id"])
        followed.append(record)
    return followed


@router.get("/imports", summary="Imports, newest first")
async def list_imports(request: Request, who: Reader, workspace: str | None = None,
                       status_: Annotated[str | None, Query(alias="status")] = None,
                       limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict:
    if status_ is not None and status_ not in jobs.STATUSES:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY,
                            f"status must be one of {', '.join(jobs.STATUSES)}")
    with db.transaction(_url()) as conn:
        workspace_id = None
        if workspace:
            try:
                workspace_id = workspaces.get(conn, workspace).id
            except LookupError:
                raise HTTPException(status.HTTP_404_NOT_FOUND, f"no workspace {workspace!r}") from None
        records = jobs.list_imports(conn, workspace_id, status_, limit)
    followed = await follow_runs(request, who, [jobs.summary(r) for r in records])
    return {"imports": [r for r in followed if status_ is None or r["status"] == status_]}


def _one(import_id: str) -> dict:
    with db.transaction(_url()) as conn:
        try:
            return jobs.summary(jobs.get(conn, import_id))
        except jobs.ImportNotFound:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no import {import_id}") from None


@router.get("/imports/{import_id}", summary="One import: status, progress, counts, warnings")
async def get_import(import_id: str, request: Request, who: Reader) -> dict:
    return (await follow_runs(request, who, [_one(import_id)]))[0]


@router.get("/imports/{import_id}/errors.csv", summary="The error report of a rejected file",
            response_class=Response, responses={200: {"content": {"text/csv": {}}}})
async def error_report(import_id: str, request: Request, who: Reader):
    """Messages in English or Traditional Chinese, by the request's Accept-Language."""
    record = _one(import_id)
    if not record.get("error_report"):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"import {import_id} has no error report")
    lang = normalise_lang(request.headers.get("accept-language"))
    report = pipeline.report_path(storage.path(record["error_report"]), lang)
    if not report.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"import {import_id} has no error report")
    # at most CONTACT_IMPORT_MAX_ERRORS rows: read whole, from local or object storage
    return Response(report.read_bytes(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Language": lang,
                             "Content-Disposition": f'attachment; filename="errors-{import_id}.csv"'})


@router.post("/imports/{import_id}/cancel", status_code=status.HTTP_202_ACCEPTED,
             summary="Cancel a waiting or running import")
async def cancel(import_id: str, request: Request, who: Writer) -> dict:
    """A waiting run is failed before it starts; a running one is stopped by Airflow and keeps
    the chunks it committed. 409 once the import has ended."""
    with db.transaction(_url()) as conn:
        try:
            record = jobs.cancel(conn, import_id, "cancelled through the API")
        except jobs.ImportNotFound:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no import {import_id}") from None
        except jobs.AlreadyFinished as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    if record.get("dag_run_id"):
        try:
            await _airflow(request, who, "PATCH", f"dagRuns/{record['dag_run_id']}", {"state": "failed"})
        except HTTPException as exc:
            if exc.status_code != status.HTTP_404_NOT_FOUND:
                raise
    return _one(import_id)


@router.get("/templates/{channel}.csv", summary="The sample file of a channel and tag mode")
async def template(channel: str, who: Reader, tag_mode: str = "append", workspace: str | None = None) -> Response:
    if channel not in CHANNELS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no channel {channel!r}; channels: {', '.join(CHANNELS)}")
    if tag_mode not in TAG_MODES:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, f"tag_mode must be one of {', '.join(TAG_MODES)}")
    ws = None
    if workspace:
        with db.transaction(_url()) as conn:
            try:
                ws = workspaces.get(conn, workspace)
            except LookupError:
                raise HTTPException(status.HTTP_404_NOT_FOUND, f"no workspace {workspace!r}") from None
            text = templates.render(channel, tag_mode, ws, workspaces.attributes(conn, ws.id))
    else:
        text = templates.render(channel, tag_mode)
    return Response(text.encode("utf-8-sig"), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{channel}-{tag_mode}.csv"'})


PAGE = Path(__file__).with_name("contact_imports_page.html")


@app.get("/ui", include_in_schema=False, response_class=HTMLResponse)
async def page() -> HTMLResponse:
    """The Contact imports page; its calls to the API carry the Airflow UI's session cookie."""
    return HTMLResponse(PAGE.read_text(encoding="utf-8"))


app.include_router(router)
