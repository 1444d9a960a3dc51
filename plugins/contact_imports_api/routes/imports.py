"""The imports: upload a file (one import, one DAG run), list and read imports, read a
rejected file's error report, cancel. Database and storage work runs in FastAPI's thread
pool: plain `def` routes, and run_in_threadpool for the upload, whose body streams in on
the event loop. Reading never changes an import (sweep.py reconciles with Airflow).
An import in a workspace the caller may not use is answered as missing (404), a workspace
the caller names and may not use with 403 (docs/design.md#who-may-use-a-workspace)."""
from __future__ import annotations

import json
import logging
import uuid
from contextlib import contextmanager
from typing import Annotated, Any, Iterator

import anyio
from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from contact_import import config, db, heartbeat, imports, intake, statuses, storage, workspaces
from contact_import.channels import CHANNELS, TAG_MODES
from contact_import.context import Context
from contact_import.endpoints import API_PREFIX, IMPORT_DAG_ID
from contact_import.errors import ImportFileError, Issue, advised_message, normalise_lang
from contact_import.import_folder import WARNINGS, report_path

from .. import airflow_client, runs, uploads
from ..auth import Caller, Reader, Writer
from ..cdp import CDP
from ..schemas import Import, ImportList, Status, errors
from .workspaces import not_allowed, unknown_workspace, workspace_for

log = logging.getLogger(__name__)
router = APIRouter(tags=["imports"])

CANCEL_MESSAGE = "cancelled through the API"
LISTED_ISSUES = 50  # of a refused file's header issues, in the 422 answer

UPLOAD_FORM = {  # the multipart body upload() parses itself, for the OpenAPI document (and Swagger's form)
    "required": True,
    "content": {"multipart/form-data": {"schema": {
        "type": "object",
        "required": ["file", "workspace", "channel"],
        "properties": {
            "file": {"type": "string", "format": "binary",
                     "description": "The contacts: CSV (any common encoding) or .xlsx, also as a .gz or as a"
                                    " .zip holding one such file; at most CONTACT_IMPORT_MAX_UPLOAD_MB as sent"
                                    " and CONTACT_IMPORT_MAX_UNPACKED_MB unpacked."},
            "workspace": {"type": "string", "description": "Slug of the workspace to import into."},
            "channel": {"type": "string", "enum": list(CHANNELS)},
            "tag_mode": {"type": "string", "enum": list(TAG_MODES), "default": "append"},
            "mapping": {"type": "string", "description": 'Optional JSON: {"file header": "field or attribute'
                                                         ' key" | null}.'},
            "require_approval": {"type": "boolean", "default": False,
                                 "description": "Wait in Airflow's approval step with a preview of the changes."},
            "complete_local_phones": {"type": "boolean", "default": False,
                                      "description": "Complete phone numbers written without their country code"
                                                     " (0912 345 678) with the workspace's default_region, each"
                                                     " listed as a phone_completed warning; off, they are"
                                                     " errors."},
        },
    }}},
}


def stored_record(ctx: Context, import_id: str, who: Caller) -> dict[str, Any]:
    """The import's row (with its storage folder); 404 when there is none, or when it is in
    a workspace `who` may not use: such an import is indistinguishable from a missing one."""
    with db.transaction(ctx.cdp_url) as conn:
        try:
            record = imports.get(conn, import_id)
            workspaces.get_usable(conn, record["workspace"], who.access)
        except (imports.ImportNotFound, workspaces.NotAllowed):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no import {import_id}") from None
    return record


def read_import(ctx: Context, import_id: str, who: Caller) -> dict[str, Any]:
    """An import as the API shows it; 404 as stored_record."""
    return summaries([stored_record(ctx, import_id, who)])[0]


ImportId = Annotated[str, PathParam(description="The import's id (a UUID).")]
# the statuses in which the import folder's warnings.csv is the import's: the preview's while
# it awaits approval, finalize's once completed (during the upsert it is still the preview's)
WARNINGS_REPORTED = (statuses.AWAITING_APPROVAL, statuses.COMPLETED)


def api_url(request: Request, path: str) -> str:
    """An absolute URL of this API, wherever Airflow's API server mounts the app (its
    root_path carries the mount and any [api] base_url path)."""
    return f"{request.url.scheme}://{request.url.netloc}{request.scope.get('root_path', '')}{API_PREFIX}{path}"


def _message(record: dict[str, Any]) -> dict[str, Any] | None:
    """The library keeps a rejected file's errors by code as a JSON object in `message`; the
    API gives it as an object, with a sentence."""
    text = record.get("message")
    if not text:
        return None
    if record["status"] == statuses.VALIDATION_FAILED:
        try:
            by_code = json.loads(text)
        except ValueError:
            by_code = None
        if isinstance(by_code, dict) and all(isinstance(v, int) for v in by_code.values()):
            total = record.get("errors") or sum(by_code.values())
            counted = ", ".join(f"{code} {count}" for code, count in by_code.items())
            return {"text": f"the file has {total} {'error' if total == 1 else 'errors'} ({counted}):"
                            " nothing was imported; the rows are in the error report",
                    "errors_by_code": by_code}
    return {"text": text, "errors_by_code": None}


def present(request: Request, record: dict[str, Any], dag_paused: bool | None,
            triggered_by: str | None = None, airflow_unavailable: bool = False) -> dict[str, Any]:
    """An import summary as this API answers it (schemas.Import): reports as URLs of this
    API, never where storage keeps them; `dag_paused` only for a waiting import with a DAG
    run; `airflow_unavailable` when Airflow was to be asked something and could not be."""
    path = f"/imports/{record['id']}"
    waiting = record["status"] == statuses.WAITING and record.get("dag_run_id")
    return {
        **record,
        "error_report": api_url(request, f"{path}/errors.csv") if record.get("error_report") else None,
        "data_docs": api_url(request, f"{path}/data_docs.html") if record.get("data_docs") else None,
        "warnings_report": api_url(request, f"{path}/warnings.csv")
        if record["status"] in WARNINGS_REPORTED and any((record.get("warnings") or {}).values()) else None,
        "message": _message(record),
        "dag_paused": dag_paused if waiting else None,
        "triggered_by": triggered_by,
        "airflow_unavailable": airflow_unavailable,
    }


def present_all(request: Request, who: Caller, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Imports as this API answers them; Airflow is asked whether the import DAG is paused
    once, and only when one of them waits for its DAG run, and who triggered their runs
    in one read of its database. When Airflow cannot be asked, the imports are answered as
    stored, saying so (docs/operations.md#faults)."""
    paused, unavailable = None, False
    if any(r["status"] == statuses.WAITING and r.get("dag_run_id") for r in records):
        try:
            paused = airflow_client.dag_paused(airflow_client.base_url(request), who)
        except airflow_client.AirflowUnavailable as exc:
            log.warning("answering the imports as stored: %s", exc)
            unavailable = True
    users = runs.triggering_users(r.get("dag_run_id") for r in records)
    if users is None:
        users, unavailable = {}, True
    return [present(request, r, paused, users.get(r.get("dag_run_id")), unavailable) for r in records]


def summaries(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The imports' summaries, an import under Airflow told interrupted by its DAG run's
    state: Airflow is asked once, and only about the runs of imports whose heartbeat is stale."""
    ended = runs.ended(heartbeat.runs_to_ask(records))
    return [imports.summary(record, ended) for record in records]


def _csv(content: bytes, name: str, lang: str) -> Response:
    return Response(content, media_type="text/csv; charset=utf-8",
                    headers={"Content-Language": lang, "Content-Disposition": f'attachment; filename="{name}"'})


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _options(form: uploads.Form) -> dict[str, Any]:
    fields = form.fields
    if form.stored is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "the form has no file")
    missing = [f for f in ("workspace", "channel") if not fields.get(f)]
    if missing:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"missing form fields: {', '.join(missing)}")
    try:
        mapping = json.loads(fields["mapping"]) if fields.get("mapping") else None
    except json.JSONDecodeError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"mapping is not JSON: {exc}") from None
    if mapping is not None and not isinstance(mapping, dict):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "mapping must be a JSON object")
    return {"workspace": fields["workspace"], "channel": fields["channel"],
            "tag_mode": fields.get("tag_mode") or "append", "mapping": mapping,
            "require_approval": _flag(fields.get("require_approval")),
            "complete_local_phones": _flag(fields.get("complete_local_phones"))}


@contextmanager
def _options_refused(ctx: Context, workspace: str | None, who: Caller) -> Iterator[None]:
    """Options no import can run with are a 422 naming them; a workspace the caller may
    not use, 403."""
    try:
        yield
    except workspaces.NotAllowed as exc:
        raise not_allowed(exc) from None
    except LookupError:  # no such workspace (the library's message points to its CLI; a web user has none)
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, unknown_workspace(ctx, workspace, who)) from None
    except ValueError as exc:  # no such channel or tag mode
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None


class _Refused(Exception):
    """The file itself is refused: 413 (too large) or 422 (the checks' issues)."""

    def __init__(self, status_code: int, issues: list[Issue]):
        super().__init__(status_code)
        self.status_code = status_code
        self.issues = issues


def _check_fields(ctx: Context, who: Caller, fields: dict[str, str]) -> None:
    """The options sent before the file, checked before the file streams in."""
    with _options_refused(ctx, fields.get("workspace"), who):
        intake.check_request(ctx, workspace=fields.get("workspace") or None, channel=fields.get("channel") or None,
                             tag_mode=fields.get("tag_mode") or None,
                             complete_local_phones=_flag(fields.get("complete_local_phones")), user=who.access)


def _check_and_record(ctx: Context, who: Caller, import_id: str, form: uploads.Form, options: dict[str, Any]) -> None:
    with _options_refused(ctx, options["workspace"], who):
        intake.check_request(ctx, workspace=options["workspace"], channel=options["channel"],
                             tag_mode=options["tag_mode"], complete_local_phones=options["complete_local_phones"],
                             user=who.access)
    issues = intake.check_file(ctx, form.stored, workspace=options["workspace"], channel=options["channel"],
                               mapping=options["mapping"])
    if issues:
        raise _Refused(status.HTTP_422_UNPROCESSABLE_CONTENT, issues)
    with _options_refused(ctx, options["workspace"], who):
        intake.record_upload(ctx, import_id=import_id, stored=form.stored, sha256=form.sha256,
                             file_name=form.file_name, source="api", requested_by=who.access.name, **options)


def _refusal(refused: _Refused, lang: str) -> JSONResponse:
    listed = [{"row": issue.row, "column": issue.column, "value": issue.value, "code": issue.code,
               "message": advised_message(issue, lang)} for issue in refused.issues[:LISTED_ISSUES]]
    return JSONResponse({"detail": "\n".join(entry["message"] for entry in listed), "errors": listed},
                        status_code=refused.status_code, headers={"Content-Language": lang})


def _discard(ctx: Context, import_id: str) -> None:
    """Best effort: storage out of reach keeps what it has, which the sweep removes later."""
    try:
        storage.remove_tree(ctx.storage.import_folder(import_id))
    except Exception as exc:  # noqa: BLE001 - the answer says what went wrong before this
        log.warning("import %s: its folder is left for the sweep: %s", import_id, exc)


def _start_run(ctx: Context, base: str, who: Caller, import_id: str, conf: dict[str, Any]) -> dict[str, Any]:
    """Trigger the import's DAG run; a trigger Airflow refused or did not answer ends the
    import failed (a run Airflow started all the same stops at its first task, which finds
    the import ended), so no import waits for a run that may never come."""
    try:
        run = airflow_client.trigger(base, who, conf)
    except HTTPException as exc:
        with db.transaction(ctx.cdp_url) as conn:
            statuses.end(conn, import_id, statuses.FAILED, f"could not start the DAG run: {exc.detail}")
        raise
    except airflow_client.AirflowUnavailable as exc:
        with db.transaction(ctx.cdp_url) as conn:
            statuses.end(conn, import_id, statuses.FAILED, f"could not start the DAG run: {exc}")
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            f"the file was not imported: {exc}. Import {import_id} is recorded failed;"
                            " upload the file again in a moment.") from None
    intake.record_run(ctx, import_id, run["dag_run_id"])
    return read_import(ctx, import_id, who)


class FileIssue(BaseModel):
    """One reason the file was refused, as the DAG's error report would give it."""

    row: int | None = Field(description="Line in the file (header = 1), when the issue has one.")
    column: str = Field(description="The column concerned, as the file names it; empty when none.")
    value: str = Field(description="The value concerned; empty when none.")
    code: str = Field(description="The stable error code (docs/design.md#error-codes), e.g. missing_required_column.")
    message: str = Field(description="What is wrong and what to do, in the request's Accept-Language"
                                     " (English or Traditional Chinese).")


class FileRefused(BaseModel):
    """The file was refused before anything was stored or recorded."""

    detail: str | list[dict[str, Any]] = Field(description="The messages, one per line (FastAPI's list of field"
                                                           " errors for a malformed request).")
    errors: list[FileIssue] = Field(default=[], description="Each reason with its code; empty when the form"
                                                            " itself is wrong (a missing field, a bad mapping).")


@router.post("/imports", status_code=status.HTTP_202_ACCEPTED, response_model=Import,
             summary="Upload a file: one import, one DAG run", response_description="The new import, waiting.",
             openapi_extra={"requestBody": UPLOAD_FORM},
             responses={**errors(401, 403, 415, 502, 503, 507),
                        413: {"model": FileRefused, "description": "The file is larger than"
                              " CONTACT_IMPORT_MAX_UPLOAD_MB as sent (file_too_large: compress it, or split it),"
                              " or than CONTACT_IMPORT_MAX_UNPACKED_MB unpacked (unpacked_too_large)."},
                        422: {"model": FileRefused, "description": "The form or the file cannot be imported:"
                              " an unknown workspace, channel or tag mode; a file whose first bytes or header"
                              " the DAG would reject (the same codes and messages)."}})
async def upload(request: Request, who: Writer, ctx: CDP) -> Any:
    """multipart/form-data: `file`, `workspace`, `channel`, `tag_mode`, optional `mapping`
    (JSON), `require_approval` and `complete_local_phones`. The file may be sent as a `.gz`, or as a `.zip` holding
    one file: it is unpacked as it arrives. What the file's first bytes and header decide
    (encoding, a table at all, the columns, the channel's User ID column) is answered at
    once with 422 and the error codes the DAG uses; the DAG checks everything again. The
    import is `waiting` until its DAG run starts. Nothing is kept of a refused upload.
    When Airflow gives no answer to the trigger in time: 503, the import recorded failed."""
    import_id = str(uuid.uuid4())
    lang = normalise_lang(request.headers.get("accept-language"))
    try:
        try:
            form = await uploads.receive_form(
                request, lambda name: intake.upload_path(ctx, import_id, name),
                config.max_upload_mb() * 2**20, config.max_unpacked_mb() * 2**20,
                before_file=lambda fields: _check_fields(ctx, who, fields), remote=not storage.is_local(ctx.storage.base))
        except uploads.UploadTooLarge as exc:
            raise _Refused(status.HTTP_413_CONTENT_TOO_LARGE,
                           [Issue(exc.code, params={"limit": exc.limit // 2**20})]) from None
        except ImportFileError as exc:  # a compressed file that cannot be unpacked
            raise _Refused(status.HTTP_422_UNPROCESSABLE_CONTENT, [exc.issue]) from None
        options = _options(form)
        await run_in_threadpool(_check_and_record, ctx, who, import_id, form, options)
    except BaseException as exc:
        with anyio.CancelScope(shield=True):
            await run_in_threadpool(_discard, ctx, import_id)
        if isinstance(exc, _Refused):
            return _refusal(exc, lang)
        if isinstance(exc, storage.StorageFault):  # no room for the file (or for checking it), or out of reach
            full = exc.issue.code == "storage_full"
            raise HTTPException(status.HTTP_507_INSUFFICIENT_STORAGE if full else status.HTTP_503_SERVICE_UNAVAILABLE,
                                advised_message(exc.issue, lang)) from None
        raise
    conf = {**options, "mapping": options["mapping"] or {}, "file": str(form.stored), "import_id": import_id}
    started = await run_in_threadpool(_start_run, ctx, airflow_client.base_url(request), who, import_id, conf)
    return (await run_in_threadpool(present_all, request, who, [started]))[0]


@router.get("/imports", response_model=ImportList, summary="Imports, newest first, a page at a time",
            response_description="A page of imports, newest first, and how many match.",
            responses=errors(401, 403, 404, 422, 503))
def list_imports(request: Request, who: Reader, ctx: CDP,
                 workspace: Annotated[str | None, Query(description="Only this workspace's (its slug).")] = None,
                 status_: Annotated[list[Status] | None, Query(
                     alias="status", description="Only imports in this status; repeat it for several"
                                                 " (`status=waiting&status=importing`).")] = None,
                 limit: Annotated[int, Query(ge=1, le=1000, description="At most this many.")] = 100,
                 offset: Annotated[int, Query(ge=0, description="Skip this many of the newest first (the"
                                                                " pages before).")] = 0,
                 ) -> dict[str, Any]:
    """Only imports of the workspaces the caller may use; 403 for a `workspace` they may not use."""
    with db.transaction(ctx.cdp_url) as conn:
        if workspace:
            workspace_ids = [workspace_for(conn, ctx, workspace, who, status.HTTP_404_NOT_FOUND).id]
        else:
            workspace_ids = [w.id for w in workspaces.usable(conn, who.access)]
        total = imports.count_imports(conn, workspace_ids, status_)
        records = imports.list_imports(conn, workspace_ids, status_, limit, offset) if offset < total else []
    return {"imports": present_all(request, who, summaries(records)),
            "total": total, "offset": offset, "limit": limit}


@router.get("/imports/{import_id}", response_model=Import,
            summary="One import: status, progress, counts, warnings, reports", response_description="The import.",
            description=f"A waiting import says whether DAG `{IMPORT_DAG_ID}` is paused in Airflow"
                        " (`dag_paused`): its run starts only once the DAG is unpaused. When Airflow does not"
                        " answer in time, the import is answered as stored with `airflow_unavailable` true.",
            responses=errors(401, 403, 404, 503))
def get_import(import_id: ImportId, request: Request, who: Reader, ctx: CDP) -> dict[str, Any]:
    return present_all(request, who, [read_import(ctx, import_id, who)])[0]


@router.get("/imports/{import_id}/errors.csv", summary="The error report of a rejected file",
            response_class=Response, responses={200: {"content": {"text/csv": {}},
                                                      "description": "row,column,value,code,message"},
                                                **errors(401, 403, 404, 503)})
def error_report(import_id: ImportId, request: Request, who: Reader, ctx: CDP) -> Response:
    """Messages in English or Traditional Chinese, by the request's Accept-Language."""
    record = read_import(ctx, import_id, who)
    if not record.get("error_report"):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"import {import_id} has no error report")
    lang = normalise_lang(request.headers.get("accept-language"))
    report = report_path(ctx.storage.path(record["error_report"]), lang)
    if not report.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"import {import_id} has no error report")
    # at most CONTACT_IMPORT_MAX_ERRORS rows: read whole, from local or object storage
    return _csv(report.read_bytes(), f"errors-{import_id}.csv", lang)


@router.get("/imports/{import_id}/warnings.csv", summary="The rows behind an import's warnings",
            response_class=Response, responses={200: {"content": {"text/csv": {}},
                                                      "description": "row,column,value,code,message (English)"},
                                                **errors(401, 403, 404, 503)})
def warnings_report(import_id: ImportId, who: Reader, ctx: CDP) -> Response:
    """The rows counted in `warnings` (profile_shared, identity_conflict, ...), imported
    anyway: the preview's while the import awaits approval, the import's own once it
    completed. 404 when it has none."""
    record = stored_record(ctx, import_id, who)
    if record["status"] not in WARNINGS_REPORTED or not record.get("work_dir"):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"import {import_id} has no warnings report")
    report = ctx.storage.path(record["work_dir"]) / WARNINGS
    if not report.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"import {import_id} has no warnings report")
    # one row per warning: at most a few rows per row of the file, read whole like the error report
    return _csv(report.read_bytes(), f"warnings-{import_id}.csv", "en")


@router.get("/imports/{import_id}/data_docs.html", summary="Great Expectations' page of a failed validation",
            response_class=Response, responses={200: {"content": {"text/html": {}},
                                                      "description": "Great Expectations' Data Docs page"},
                                                **errors(401, 403, 404, 503)})
def data_docs(import_id: ImportId, who: Reader, ctx: CDP) -> Response:
    """Served sandboxed: the page shows values from the uploaded file, and in a sandbox its
    scripts run in an origin of their own, without the Airflow session."""
    record = read_import(ctx, import_id, who)
    page = ctx.storage.path(record["data_docs"]) if record.get("data_docs") else None
    if page is None or not page.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"import {import_id} has no Great Expectations page")
    return Response(page.read_bytes(), media_type="text/html; charset=utf-8",
                    headers={"Content-Security-Policy": "sandbox allow-scripts allow-popups"})


@router.post("/imports/{import_id}/cancel", status_code=status.HTTP_202_ACCEPTED, response_model=Import,
             summary="Cancel a waiting or running import",
             response_description="The import, cancelled.", responses=errors(401, 403, 404, 409, 502, 503))
def cancel(import_id: ImportId, request: Request, who: Writer, ctx: CDP) -> dict[str, Any]:
    """The import ends `cancelled` and its DAG run is marked failed: a waiting run never
    starts; a running one is stopped by Airflow and keeps the chunks it committed. 409
    once the import has ended. When Airflow cannot be asked to mark the run failed, the
    import is cancelled all the same and the answer says `airflow_unavailable`: the run
    ends when it next checks its import (as validation starts and ends, after each chunk
    of the upsert, as the import would complete)."""
    stored_record(ctx, import_id, who)  # 404 for an import the caller may not see
    with db.transaction(ctx.cdp_url) as conn:
        try:
            statuses.change(conn, import_id, statuses.CANCELLED, message=CANCEL_MESSAGE)
            dag_run_id = imports.get(conn, import_id)["dag_run_id"]
        except imports.ImportNotFound:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no import {import_id}") from None
        except statuses.IllegalTransition as exc:  # AlreadyFinished
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    unavailable = False
    if dag_run_id:
        try:
            airflow_client.fail_run(airflow_client.base_url(request), who, dag_run_id)
        except airflow_client.AirflowUnavailable as exc:  # the run stops at its next step (docstring)
            log.warning("import %s is cancelled, its DAG run not yet marked failed: %s", import_id, exc)
            unavailable = True
    answer = present_all(request, who, [read_import(ctx, import_id, who)])[0]
    return {**answer, "airflow_unavailable": answer["airflow_unavailable"] or unavailable}
