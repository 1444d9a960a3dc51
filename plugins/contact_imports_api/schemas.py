"""The response models: what the OpenAPI document says an import, a list of imports and
an error are. The routes return routes.imports.present() of an `imports.summary()` dict:
the library's summary with its report paths turned into this API's URLs, its message into
an object, and whether the import DAG is paused (tests/unit/test_plugin_app.py keeps the
two in step and every field described).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from contact_import import changes, imports, statuses
from contact_import.channels import CHANNELS, TAG_MODES
from contact_import.context import CONNECTION_ID
from contact_import.endpoints import IMPORT_DAG_ID

Status = Literal[statuses.STATUSES]  # type: ignore[valid-type]
TagMode = Literal[TAG_MODES]  # type: ignore[valid-type]
Step = Literal[imports.STEPS]  # type: ignore[valid-type]
Counts = dict[str, int]


class Message(BaseModel):
    """Why an import ended as it did."""

    model_config = ConfigDict(title="Message")

    text: str = Field(description="One sentence in English: why the import failed, who or what cancelled it,"
                                  " or how many errors a rejected file has.")
    errors_by_code: Counts | None = Field(
        description="A rejected file's (validation_failed) errors counted by code, e.g."
                    ' {"invalid_email": 3}; the rows are in the error report. Null otherwise.')


class PreviewChange(BaseModel):
    """One concrete change the preview found: what one row of the file does to one contact."""

    model_config = ConfigDict(title="PreviewChange")

    row: int = Field(description="The row's line in the file (the header is line 1).")
    user_id: str = Field(description="The contact's channel User ID.")
    change: Literal[changes.KINDS] = Field(  # type: ignore[valid-type]
        description="`new_contact`: the contact is created (with a new customer unless its email or phone"
                    " matches one); `field`: a profile field of the contact's customer; `attribute`: a custom"
                    " attribute of the customer; `tags`: tags added or removed; `binding`: its OMO binding.")
    field: str | None = Field(description="The profile field (name, email, phone, gender, birthday) or the"
                                          " attribute's key; `tags` or `binding` for those; null for a new contact.")
    old: str | None = Field(description="The value stored now (a binding as `teammate (store)`); null when"
                                        " nothing is stored.")
    new: str | None = Field(description="The value the import writes (a binding as `teammate (store)`); null"
                                        " unbinds a binding.")
    added: list[str] = Field(description="The tags a `tags` change adds; empty for the other changes.")
    removed: list[str] = Field(description="The tags a `tags` change removes; empty for the other changes.")


class Progress(BaseModel):
    """Where a running import is: its step and that step's rows, updated once per chunk."""

    model_config = ConfigDict(title="Progress")

    step: Step = Field(
        description="The step running: `reading` (the file's encoding and columns), `checking` (validation),"
                    " `preview` (the changes planned without writing, for approval), `importing` (writing"
                    " contacts), `binding` (OMO bindings).")
    rows_done: int = Field(description="Rows of the file this step has done, after its last chunk; rows that"
                                       " validation left out as unchanged count as done.")
    rows_total: int | None = Field(description="Rows in the file; null until they are counted (while reading).")
    rows_per_second: float | None = Field(description="Rows per second since the step started; null until its"
                                                      " first chunk ends.")
    seconds_left: float | None = Field(description="Estimated seconds until the step ends, at that rate; null"
                                                   " while there is no rate or no total.")


class Import(BaseModel):
    """One import: one uploaded file, one run of the import DAG."""

    model_config = ConfigDict(title="Import")

    id: str = Field(description="The import's id (a UUID).")
    import_id: str = Field(description="The same id, under the name the DAG run's conf uses.")
    workspace: str = Field(description="Slug of the workspace the contacts are imported into.")
    channel: str = Field(description=f"The channel of the contacts' user ids: one of {', '.join(CHANNELS)}.")
    tag_mode: TagMode = Field(description="`append` adds the file's tags; `overwrite` makes a contact's tags"
                                          " exactly the file's.")
    complete_local_phones: bool = Field(description="Phone numbers written without their country code are"
                                                    " completed with the workspace's region (each a"
                                                    " phone_completed warning) rather than rejected.")
    status: Status = Field(description="waiting (queued in Airflow), validating, awaiting_approval, importing;"
                                       " finished: completed, validation_failed, cancelled, failed.")
    source: str = Field(description="Where the import came from: `api` (this API and the page), `ui` (the DAG's"
                                    " trigger form in Airflow), `cli` (the CLI running the DAG locally), `feed`.")
    file_name: str | None = Field(description="The uploaded file's original name.")
    file_repeat: int | None = Field(description="Which import of a file of this name into the workspace this is:"
                                                " 1 for the first, 2 for the next, ...; null without a file name.")
    feed: str | None = Field(description="For an import from a partner feed (`source` feed): the feed's name.")
    triggered_by: str | None = Field(description="The Airflow user who uploaded the file or triggered the DAG run"
                                                 " (Airflow's record of the run); null for feeds and the CLI's local"
                                                 " runs, or when Airflow could not say.")
    encoding: str | None = Field(description="The file's detected text encoding, once detected.")
    delimiter: str | None = Field(description="The file's detected CSV delimiter, once detected.")
    total_rows: int | None = Field(description="Data rows in the file, once read.")
    rows: int | None = Field(description="The same as total_rows.")
    processed_rows: int = Field(description="Rows imported so far (committed chunks).")
    errors: int = Field(description="Rows with errors; more than zero ends the import validation_failed.")
    warnings: Counts = Field(description="Warnings by code (rows imported anyway), e.g. profile_shared.")
    preview: Counts | None = Field(description="What importing would change, counted during validation:"
                                               " created, updated, unchanged, tags_added, ...")
    preview_sample: list[PreviewChange] | None = Field(
        description=f"The preview's first concrete changes in file order (at most {changes.SAMPLE_SIZE}), shown"
                    " to whoever approves the import; null for an import made without approval.")
    result: Counts | None = Field(description="What the import changed: created, updated, unchanged,"
                                              " customers_created, tags_added, tags_removed, bound, unbound.")
    error_report: str | None = Field(description="URL of a rejected file's error report on this API"
                                                 " (`/imports/{id}/errors.csv`: row,column,value,code,message;"
                                                 " English or Traditional Chinese by Accept-Language); null when"
                                                 " the import has none.")
    warnings_report: str | None = Field(description="URL of the rows behind `warnings` on this API"
                                                    " (`/imports/{id}/warnings.csv`): the preview's while the import"
                                                    " awaits approval, the import's own once completed; null when"
                                                    " there is none.")
    data_docs: str | None = Field(description="URL of Great Expectations' page of a failed validation on this API"
                                              " (`/imports/{id}/data_docs.html`); null when there is none.")
    message: Message | None = Field(description="Why the import ended as it did (failed, cancelled, rejected);"
                                                " null while it runs and once it completed.")
    dag_paused: bool | None = Field(description=f"For a waiting import: true when DAG `{IMPORT_DAG_ID}` is paused"
                                                " in Airflow, so its run does not start until someone unpauses the"
                                                " DAG; false when it is not paused. Null for an import that is not"
                                                " waiting, or when Airflow could not say.")
    airflow_unavailable: bool = Field(
        description="True when Airflow was to be asked about this answer (whether the DAG is paused, who"
                    " triggered the run, for a cancel: to mark the run failed) and gave no answer within"
                    " CONTACT_IMPORT_AIRFLOW_TIMEOUT: the import is as the CDP database stores it, `dag_paused`"
                    " and `triggered_by` are null, and a cancelled import's run ends when it next checks its"
                    " import. False otherwise.")
    dag_run_id: str | None = Field(description=f"The import's run of DAG `{IMPORT_DAG_ID}` in Airflow.")
    created_at: datetime | None = Field(description="When the import was recorded.")
    started_at: datetime | None = Field(description="When its validation started.")
    finished_at: datetime | None = Field(description="When it ended.")
    interrupted: bool = Field(description="True when the process running the import stopped without ending it:"
                                          " it is waiting, validating or importing, has shown no sign of life"
                                          " for CONTACT_IMPORT_HEARTBEAT_SECONDS, and its runner is gone (its"
                                          " DAG run ended; for the CLI's local imports, its process). The"
                                          " status stays the one it stopped in: `contact-import resume` goes"
                                          " on with a local import, importing the file again finishes one"
                                          " under Airflow.")
    heartbeat_at: datetime | None = Field(description="When the import's runner last showed it is alive.")
    runner: str | None = Field(description="Who runs the import: `dag_run:<run id>` under Airflow, or"
                                           " `local:<host>:<pid>:<start time>` for a local `contact-import"
                                           " import` or `resume`; null until its DAG run is recorded.")
    progress: Progress | None = Field(description="The running step and its rows, rate and time left; null"
                                                  " unless the import is validating or importing.")


class ImportList(BaseModel):
    """A page of imports, newest first."""

    imports: list[Import] = Field(description="Newest first, at most `limit`, after skipping `offset`.")
    total: int = Field(description="How many imports match the filters, on every page.")
    offset: int = Field(description="How many matching imports come before this page.")
    limit: int = Field(description="The largest page asked for.")


class Workspace(BaseModel):
    """A workspace imports go into."""

    model_config = ConfigDict(title="Workspace")

    slug: str = Field(description="What the API, the CLI and the DAG's `workspace` take.")
    name: str = Field(description="The workspace's display name.")
    omo_enabled: bool = Field(description="Whether it has OMO: LINE and WhatsApp contacts can be bound to teammates.")
    default_region: str | None = Field(description="Its ISO 3166 alpha-2 region for local phone numbers, if any.")


class WorkspaceList(BaseModel):
    """Every workspace, by slug."""

    workspaces: list[Workspace] = Field(description="By slug.")


class Error(BaseModel):
    """An error answer."""

    detail: str | list[dict[str, Any]] = Field(
        description="What went wrong, in one sentence; FastAPI's list of field errors for a malformed request.")


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The `responses` of a route answering these error codes."""
    return {code: {"model": Error, "description": ERROR_CODES[code]} for code in codes}


ERROR_CODES = {
    401: "No valid Airflow token (Authorization: Bearer, or the Airflow UI's session cookie).",
    403: f"Airflow does not let the caller read (GET) or trigger (POST) runs of DAG {IMPORT_DAG_ID}, or the"
         " caller may not use the workspace the request names (the workspace file's `access`).",
    404: "No such import (an import in a workspace the caller may not use is answered the same), workspace"
         " or channel, or the import has no such report.",
    409: "The import already ended.",
    413: "The file is larger than CONTACT_IMPORT_MAX_UPLOAD_MB.",
    415: "The body is not multipart/form-data.",
    422: "A form field or query parameter is not valid.",
    502: "Airflow's REST API refused the call with an unexpected answer (not 403, 404 or 409).",
    503: f"No CDP database (the Airflow connection {CONNECTION_ID} is not defined, or Airflow's database could not"
         " be read to find it); for an upload also: Airflow's"
         " REST API gave no answer in time (CONTACT_IMPORT_AIRFLOW_TIMEOUT), so the import was not started: it is"
         " recorded failed and the file is to be uploaded again; or object storage could not be reached while the"
         " file streamed in (storage_unavailable), and nothing was kept.",
    507: "No space is left where uploads are stored (storage_full): nothing was kept; upload again once there is.",
}


def one_error_model(spec: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document with every error answer described by `Error`: FastAPI adds its
    own undescribed HTTPValidationError as the 422 of each route with a parameter; `Error`
    covers that answer too (its `detail` may be FastAPI's list)."""
    ref = "#/components/schemas/HTTPValidationError"
    for operation in (op for ops in spec.get("paths", {}).values() for op in ops.values()):
        answer = operation.get("responses", {}).get("422", {})
        if answer.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref") == ref:
            operation["responses"]["422"] = {
                "description": ERROR_CODES[422],
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    components = spec.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    return spec
