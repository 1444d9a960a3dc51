"""DAG `contact_import`: one run per import file.

Each task is a few lines over one call into the library (contact_import.tasks) and
passes only small metadata through XCom. The CDP database is Airflow's connection
`cdp_default`; files go through Airflow's object storage. Runs beyond
CONTACT_IMPORT_MAX_ACTIVE wait queued: Airflow's queue is the `waiting` status.
"""
from __future__ import annotations

import uuid
from datetime import timedelta

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from cdp_connection import cdp_context
from contact_import import config, context, intake, tasks
from contact_import.channels import CHANNELS, TAG_MODES
from contact_import.endpoints import AIRFLOW_PAGE_PATH, IMPORT_DAG_ID

RUN_NAMESPACE = uuid.UUID("0b6f3c52-4d0c-4a55-9e3b-6a1c0b1f7c11")


def import_id_of(airflow_context) -> str:
    """The import this run works on: named by the trigger, or derived from the run id."""
    run = airflow_context["dag_run"]
    return ((airflow_context.get("params") or {}).get("import_id") or (run.conf or {}).get("import_id")
            or str(uuid.uuid5(RUN_NAMESPACE, run.run_id)))


def record_failure(airflow_context) -> None:
    """A task failed for good: its import ends failed (unless it already ended)."""
    exception = airflow_context.get("exception")
    if context.no_database_message() in str(exception):
        return  # nowhere to record it: the task's own failure says why
    tasks.failed(cdp_context(), import_id_of(airflow_context), f"{airflow_context['ti'].task_id}: {exception}")


def run_ended(airflow_context) -> None:
    """A run ended: an import still unfinished is reconciled with its run, and a partner
    feed's file moves to done/ or failed/."""
    from contact_import import feeds

    try:
        ctx, import_id = cdp_context(), import_id_of(airflow_context)
    except AirflowFailException as exc:  # no CDP database: nothing to reconcile
        print(exc)
        return
    if airflow_context["dag_run"].state == "failed":
        tasks.run_ended(ctx, import_id)
    try:
        feeds.settle_import(ctx, import_id)
    except Exception as exc:  # the feed's next scan settles it anyway
        print(f"settling the feed file later: {exc}")


def stage(task_function, import_id: str):
    """Run a library task; a user's mistake fails the Airflow task at once, without retries."""
    try:
        return tasks.run(task_function, cdp_context(), import_id)
    except tasks.StageError as exc:
        raise AirflowFailException(str(exc)) from None


def imports_page_url() -> str:
    """The Contact imports page inside Airflow's UI; absolute under [api] base_url when that
    is set, so the link also works where the approval text is read outside the UI."""
    from airflow.sdk.configuration import conf

    return (conf.get("api", "base_url", fallback="") or "").rstrip("/") + AIRFLOW_PAGE_PATH


class ImportApproval(ApprovalOperator):
    """Airflow's approval step showing the preview; a rejection ends the import cancelled."""

    def execute(self, context):
        # The subject and body are the import as validation left it (file, workspace, counts,
        # sample of changes), read from the CDP as the step starts: more than XCom should carry.
        self.subject, self.body = tasks.approval_request(cdp_context(), import_id_of(context), imports_page_url())
        return super().execute(context)

    def execute_complete(self, context, event):
        # Recorded first: on Reject the operator skips the rest of the run by raising.
        if "error" not in event and event.get("chosen_options") == [self.REJECT]:
            responder = event.get("responded_by_user") or {}
            tasks.rejected(cdp_context(), import_id_of(context),
                           responder.get("name") if isinstance(responder, dict) else None)
        return super().execute_complete(context=context, event=event)


@dag(
    dag_id=IMPORT_DAG_ID,
    description="Import one file of social contacts into the CDP",
    schedule=None,
    catchup=False,
    max_active_runs=config.max_active_imports(),
    on_success_callback=run_ended,
    on_failure_callback=run_ended,
    tags=["cdp", "contact-import"],
    default_args={"retries": 1, "retry_delay": timedelta(seconds=10), "on_failure_callback": record_failure},
    params={
        "workspace": Param("demo", type="string", minLength=1, title="Workspace",
                           description="Slug of the workspace to import into"),
        "channel": Param("line", type="string", enum=list(CHANNELS), title="Channel"),
        "tag_mode": Param("append", type="string", enum=list(TAG_MODES), title="Tag mode",
                          description="append adds the file's tags; overwrite makes them exactly the file's"),
        "file": Param("", type="string", title="File in storage",
                      description="Where the file already is, as a path or URI that Airflow's workers can read:"
                                  " /data/inbox/contacts.csv, s3://aws_default@bucket/contacts.xlsx. This form"
                                  " uploads nothing (to upload one, use Imports in the menu). CSV, .xlsx, .xls"
                                  " or .ods."),
        "mapping": Param({}, type=["object", "null"], title="Column mapping",
                         description='Optional {"file header": "field or attribute key" | null}'),
        # null admitted: Airflow's form marks every field whose type excludes null as required,
        # and a switch left off is an answer.
        "require_approval": Param(False, type=["boolean", "null"], title="Require approval",
                                  description="Wait after validation until someone approves the preview in"
                                              " Airflow (Required Actions)"),
        "complete_local_phones": Param(False, type=["boolean", "null"], title="Complete local phone numbers",
                                       description="Numbers written without their country code (0912 345 678)"
                                                   " are completed with the workspace's region and listed as"
                                                   " warnings; off, they are errors"),
        # No param for the import id: the upload API, the CLI and feeds name their import in
        # the run's conf (import_id_of reads it there); the form has no import yet.
    },
)
def contact_import():
    @task
    def detect_encoding() -> dict:
        airflow_context = get_current_context()
        params, import_id, ctx = airflow_context["params"], import_id_of(airflow_context), cdp_context()
        run = airflow_context["dag_run"]
        named = (run.conf or {}).get("import_id")  # by the API, the CLI or a feed
        form = not named and not intake.import_exists(ctx, import_id)
        try:  # before the file is read: the workspace's access (docs/design.md#who-may-use-a-workspace)
            intake.check_run(ctx, import_id, run.triggering_user_name, params["workspace"] if form else None)
        except (PermissionError, LookupError) as exc:
            raise AirflowFailException(str(exc)) from None
        if form:
            try:
                intake.create_import(ctx, workspace=params["workspace"], channel=params["channel"],
                                       tag_mode=params["tag_mode"], file=params["file"],
                                       mapping=params.get("mapping") or None,
                                       require_approval=bool(params.get("require_approval")),
                                       complete_local_phones=bool(params.get("complete_local_phones")), source="ui",
                                       import_id=import_id, dag_run_id=run.run_id)
            except (ValueError, LookupError) as exc:
                raise AirflowFailException(str(exc)) from None
        intake.record_run(ctx, import_id, run.run_id)
        return stage(tasks.detect_encoding, import_id)

    @task
    def map_columns(detected: dict) -> dict:
        return stage(tasks.map_columns, detected["import_id"])

    @task
    def validate(mapped: dict) -> dict:
        return stage(tasks.validate, mapped["import_id"])

    @task.branch
    def approval_gate(validated: dict) -> str:
        return "approve" if stage(tasks.approval_needed, validated["import_id"]) else "upsert_contacts"

    # After the gate chose it directly, or after an approval; a rejection skips it.
    @task(retries=3, trigger_rule="none_failed_min_one_success")
    def upsert_contacts(validated: dict) -> dict:
        return stage(tasks.upsert_contacts, validated["import_id"])

    @task
    def bind_teammates(upserted: dict) -> dict:
        return stage(tasks.bind_teammates, upserted["import_id"])

    @task
    def finalize(bound: dict) -> dict:
        return stage(tasks.finalize, bound["import_id"])

    validated = validate(map_columns(detect_encoding()))
    gate = approval_gate(validated)
    approve = ImportApproval(task_id="approve", subject="Import into {{ params.workspace }}: approve?",
                             ignore_downstream_trigger_rules=True)
    upserted = upsert_contacts(validated)
    gate >> [approve, upserted]
    approve >> upserted
    finalize(bind_teammates(upserted))


dag_object = contact_import()

