"""DAG `contact_import`: one run per import file (SPEC section 1).

Each task is a thin call into the library (include/contact_import/pipeline.py) and
passes only small metadata through XCom. Runs beyond CONTACT_IMPORT_MAX_ACTIVE wait
queued: Airflow's queue is the `waiting` status.
"""
from __future__ import annotations

import json
import sys
import uuid
from datetime import timedelta

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk.exceptions import AirflowFailException
from airflow.sdk import ObjectStoragePath, Param, dag, get_current_context, task

from contact_import import config, db, storage
from contact_import.channels import CHANNELS, TAG_MODES

RUN_NAMESPACE = uuid.UUID("0b6f3c52-4d0c-4a55-9e3b-6a1c0b1f7c11")
# Files in CONTACT_IMPORT_STORAGE go through Airflow's object storage (credentials from connections).
storage.use(ObjectStoragePath)


def import_id_of(context) -> str:
    """The import this run works on: named by the trigger, or derived from the run id."""
    run = context["dag_run"]
    return ((context.get("params") or {}).get("import_id") or (run.conf or {}).get("import_id")
            or str(uuid.uuid5(RUN_NAMESPACE, run.run_id)))


def record_failure(context) -> None:
    from contact_import import pipeline  # imported in tasks only: pandas would slow every DAG parse

    exception = context.get("exception")
    pipeline.task_failed(db.resolve_url(), import_id_of(context), f"{context['ti'].task_id}: {exception}")


def settle_feed_file(context) -> None:
    """A run ended: if its import came from a partner feed, move the file to done/ or failed/."""
    from contact_import import feeds

    try:
        feeds.settle_import(db.resolve_url(), import_id_of(context))
    except Exception as exc:  # the feed's next scan settles it anyway
        print(f"settling the feed file later: {exc}")


def stage(name: str, *args):
    """Run a library stage; a user's mistake fails the task at once, without retries."""
    from contact_import import pipeline

    try:
        return pipeline.run_task(name, db.resolve_url(), *args)
    except pipeline.StageError as exc:
        raise AirflowFailException(str(exc)) from None


class ImportApproval(ApprovalOperator):
    """Airflow's approval step showing the preview; a rejection ends the import cancelled."""

    def execute_complete(self, context, event):
        # Recorded first: on Reject the operator skips the rest of the run by raising.
        if "error" not in event and event.get("chosen_options") == [self.REJECT]:
            from contact_import import pipeline

            responder = event.get("responded_by_user") or {}
            pipeline.task_rejected(db.resolve_url(), import_id_of(context),
                                   responder.get("name") if isinstance(responder, dict) else None)
        return super().execute_complete(context=context, event=event)


PREVIEW_BODY = """\
Import `{{ ti.xcom_pull(task_ids='validate')['import_id'] }}` into workspace **{{ params.workspace }}**
({{ params.channel }}, tags {{ params.tag_mode }}) will, if approved:

{% for key, value in (ti.xcom_pull(task_ids='validate')['preview'] or {}).items() %}- {{ key }}: {{ value }}
{% endfor %}
Approve to import; Reject to cancel it with nothing written."""


@dag(
    dag_id="contact_import",
    description="Import one file of social contacts into the CDP",
    schedule=None,
    catchup=False,
    max_active_runs=config.max_active_imports(),
    on_success_callback=settle_feed_file,
    on_failure_callback=settle_feed_file,
    tags=["cdp", "contact-import"],
    default_args={"retries": 1, "retry_delay": timedelta(seconds=10), "on_failure_callback": record_failure},
    params={
        "workspace": Param("demo", type="string", minLength=1, title="Workspace",
                           description="Slug of the workspace to import into"),
        "channel": Param("line", type="string", enum=list(CHANNELS), title="Channel"),
        "tag_mode": Param("append", type="string", enum=list(TAG_MODES), title="Tag mode",
                          description="append adds the file's tags; overwrite makes them exactly the file's"),
        "file": Param("", type="string", title="File", description="Path or URI of the CSV or .xlsx file"),
        "mapping": Param({}, type=["object", "null"], title="Column mapping",
                         description='Optional {"file header": "field or attribute key" | null}'),
        "require_approval": Param(False, type="boolean", title="Require approval"),
        "import_id": Param(None, type=["null", "string"], title="Import id",
                           description="Set by the CLI and the upload API; leave empty in the form"),
    },
)
def contact_import():
    @task
    def detect_encoding() -> dict:
        from contact_import import pipeline

        context = get_current_context()
        params, import_id = context["params"], import_id_of(context)
        url = db.resolve_url()
        if not params.get("import_id") and not pipeline.import_exists(url, import_id):
            try:
                pipeline.create_import(url, workspace=params["workspace"], channel=params["channel"],
                                       tag_mode=params["tag_mode"], file=params["file"],
                                       mapping=params.get("mapping") or None,
                                       require_approval=params["require_approval"], source="ui",
                                       import_id=import_id, dag_run_id=context["dag_run"].run_id)
            except (ValueError, LookupError) as exc:
                raise AirflowFailException(str(exc)) from None
        pipeline.record_run(url, import_id, context["dag_run"].run_id)
        return stage("detect_encoding", import_id)

    @task
    def map_columns(detected: dict) -> dict:
        return stage("map_columns", detected["import_id"])

    @task
    def validate(mapped: dict) -> dict:
        return stage("validate", mapped["import_id"])

    @task.branch
    def approval_gate(validated: dict) -> str:
        return stage("approval_gate", validated["import_id"])

    # After the gate chose it directly, or after an approval; a rejection skips it.
    @task(retries=3, trigger_rule="none_failed_min_one_success")
    def upsert_contacts(validated: dict) -> dict:
        return stage("upsert_contacts", validated["import_id"])

    @task
    def bind_teammates(upserted: dict) -> dict:
        return stage("bind_teammates", upserted["import_id"])

    @task
    def finalize(bound: dict) -> dict:
        return stage("finalize", bound["import_id"])

    validated = validate(map_columns(detect_encoding()))
    gate = approval_gate(validated)
    approve = ImportApproval(task_id="approve", subject="Import into {{ params.workspace }}: approve?",
                             body=PREVIEW_BODY, ignore_downstream_trigger_rules=True)
    upserted = upsert_contacts(validated)
    gate >> [approve, upserted]
    approve >> upserted
    finalize(bind_teammates(upserted))


dag_object = contact_import()

if __name__ == "__main__":
    # `contact-import import` runs the DAG in-process this way when no Airflow API is configured.
    dag_object.test(run_conf=json.loads(sys.argv[1]) if len(sys.argv) > 1 else None)
