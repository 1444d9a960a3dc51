"""The DAG itself: its shape and params, and whole runs through dag.test()."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
import sys

import pytest

from contact_import import db, imports, local_airflow, statuses
from tests.helpers import EXAMPLES, LINE_HEADER, ROOT, exported, line_id, table_counts, write_csv
from tests.s3_server import s3_server

SAMPLE = EXAMPLES / "line-contacts.csv"
TASKS = ["detect_encoding", "map_columns", "validate", "approval_gate", "approve", "upsert_contacts",
         "bind_teammates", "finalize"]


@pytest.fixture(scope="module")
def dag():
    sys.path.insert(0, str(ROOT / "dags"))
    from contact_import_dag import dag_object  # noqa: PLC0415

    return dag_object


# What a person fills in on the trigger form. require_approval is given: dag.test() leaves a
# run's conf in the DAG's params in this process, and another test's run asked for approval.
UI_FORM = {"workspace": "demo", "channel": "line", "tag_mode": "append", "require_approval": False}


def test_dag_has_the_pipeline_tasks_in_order_and_typed_params(dag):
    assert dag.dag_id == "contact_import"
    order = [t.task_id for t in dag.topological_sort()]
    assert order == TASKS
    params = dag.params
    assert params.get_param("channel").schema["enum"] == ["line", "whatsapp", "facebook", "instagram",
                                                         "wechat", "telegram"]
    assert params.get_param("tag_mode").schema["enum"] == ["append", "overwrite"]
    assert dag.max_active_runs == 1


def test_the_trigger_form_asks_for_a_file_in_storage_and_shows_no_import_id(dag):
    """What Airflow's trigger form shows: it draws a field per param, marks one required when
    its type excludes null, and draws a boolean as a switch."""
    params = dag.params
    assert list(params) == ["workspace", "channel", "tag_mode", "file", "mapping", "require_approval",
                            "complete_local_phones"]
    for switch in ("require_approval", "complete_local_phones"):
        param = params.get_param(switch)
        assert set(param.schema["type"]) == {"boolean", "null"} and param.value is False
    file = params.get_param("file")
    assert file.schema["title"] == "File in storage"
    assert "path or URI" in file.description and "uploads nothing" in file.description
    assert "null" in params.get_param("mapping").schema["type"]


def test_a_run_whose_conf_names_its_import_imports_that_one(dag, cdp_url, demo_workspace, airflow_on_cdp):
    """The upload API, the CLI and feeds record the import, then name it in the run's conf
    (no longer a param of the form)."""
    from contact_import import intake
    from tests.helpers import ctx

    import_id = intake.create_import(ctx(cdp_url), workspace="demo", channel="line", tag_mode="append",
                                     file=str(SAMPLE), source="api")
    run = dag.test(run_conf={"workspace": "demo", "channel": "line", "tag_mode": "append", "file": "",
                             "import_id": import_id})
    assert run.state == "success"
    with db.transaction(cdp_url) as conn:
        (record,) = imports.list_imports(conn)
    assert (record["id"], record["status"], record["source"]) == (import_id, statuses.COMPLETED, "api")
    assert record["dag_run_id"] == run.run_id and record["result"]["created"] == 6


def test_dag_test_runs_an_import_from_the_trigger_form_params(dag, cdp_url, demo_workspace, airflow_on_cdp):
    """What a user does in the Airflow UI: only workspace, channel, tag mode and file."""
    run = dag.test(run_conf={**UI_FORM, "file": str(SAMPLE)})
    assert run.state == "success"
    with db.transaction(cdp_url) as conn:
        (record,) = imports.list_imports(conn)
    assert record["status"] == statuses.COMPLETED and record["source"] == "ui"
    assert record["dag_run_id"] == run.run_id
    assert record["result"]["created"] == 6
    assert len(exported(cdp_url)) == 6


def restricted_workspace(cdp_url, users: list[str]) -> None:
    """Workspace acme, set up like demo, used only by `users` (and admins)."""
    from contact_import import workspaces

    spec = workspaces.load_file(EXAMPLES / "demo-workspace.yaml")
    spec.update(workspace="acme", access={"users": users})
    with db.transaction(cdp_url) as conn:
        workspaces.apply(conn, spec)


def first_task_failure(run, capfd) -> list[str]:
    (ti,) = [ti for ti in run.get_task_instances() if ti.task_id == "detect_encoding"]
    assert run.state == "failed" and ti.state == "failed"
    output = capfd.readouterr()
    return [line for line in (output.out + output.err).splitlines() if "AirflowFailException:" in line]


def test_a_trigger_form_run_for_a_workspace_its_user_may_not_use_fails_before_reading_the_file(
        dag, cdp_url, demo_workspace, airflow_on_cdp, capfd):
    """dag.test() records its runs as triggered by user `dag_test`, whom acme does not name:
    the first task fails, nothing is recorded and the file is not copied."""
    from tests.helpers import ctx

    restricted_workspace(cdp_url, ["alice"])
    before, stored = table_counts(cdp_url), set((ctx(cdp_url).storage.base / "imports").glob("*"))
    run = dag.test(run_conf={**UI_FORM, "workspace": "acme", "file": str(SAMPLE)})
    assert first_task_failure(run, capfd) == [
        "airflow.sdk.exceptions.AirflowFailException: The Airflow user 'dag_test' may not use the workspace"
        " 'acme'; its workspace file's access names who may."]
    assert table_counts(cdp_url) == before
    assert set((ctx(cdp_url).storage.base / "imports").glob("*")) == stored


def test_a_run_of_an_upload_accepted_for_another_user_fails_its_import_unread(dag, cdp_url, demo_workspace,
                                                                               airflow_on_cdp, capfd):
    """An import the upload API accepted for alice, run by a user acme does not name (a run
    triggered by hand naming alice's import): the import ends failed, its file unread.
    Imports the operators recorded (CLI, feeds) run whoever triggers them."""
    from contact_import import intake
    from tests.helpers import ctx

    restricted_workspace(cdp_url, ["alice"])
    import_id = intake.create_import(ctx(cdp_url), workspace="acme", channel="line", tag_mode="append",
                                     file=str(SAMPLE), source="api")
    with db.transaction(cdp_url) as conn:
        imports.update(conn, import_id, requested_by="alice")
    run = dag.test(run_conf={**UI_FORM, "workspace": "acme", "file": "", "import_id": import_id})
    (failure,) = first_task_failure(run, capfd)
    assert "may not use the workspace 'acme'" in failure
    with db.transaction(cdp_url) as conn:
        record = imports.get(conn, import_id)
    assert record["status"] == statuses.FAILED and record["encoding"] is None and record["total_rows"] is None
    assert "The Airflow user 'dag_test' may not use the workspace 'acme'" in record["message"]

    by_operator = intake.create_import(ctx(cdp_url), workspace="acme", channel="line", tag_mode="append",
                                       file=str(SAMPLE), source="cli")
    run = dag.test(run_conf={**UI_FORM, "workspace": "acme", "file": "", "import_id": by_operator})
    assert run.state == "success"


def test_a_task_with_no_cdp_database_configured_fails_with_one_clear_line(dag, cdp_url, demo_workspace,
                                                                        airflow_on_cdp, monkeypatch, capfd):
    """No connection cdp_default: the first task fails at once and writes nowhere, not even to
    an embedded server of its own; CDP_DATABASE_URL alone does not count inside Airflow."""
    monkeypatch.delenv("AIRFLOW_CONN_CDP_DEFAULT")
    monkeypatch.setenv("CDP_DATABASE_URL", cdp_url)
    before = table_counts(cdp_url)
    run = dag.test(run_conf={**UI_FORM, "file": str(SAMPLE)})
    assert run.state == "failed"
    (ti,) = [ti for ti in run.get_task_instances() if ti.task_id == "detect_encoding"]
    assert ti.state == "failed"
    output = capfd.readouterr()
    errors = [line for line in (output.out + output.err).splitlines() if "Exception:" in line or "Error:" in line]
    assert errors == ["airflow.sdk.exceptions.AirflowFailException: no CDP database: define the Airflow connection"
                      " 'cdp_default' (AIRFLOW_CONN_CDP_DEFAULT, or Admin > Connections)"], errors
    assert table_counts(cdp_url) == before
    assert not (Path(os.environ["CONTACT_IMPORT_DATA_DIR"]) / "pg").exists()


def _cli(args: list[str], url: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "contact_import.cli", "--db", url, *args],
                          capture_output=True, text=True)


def test_cli_import_runs_the_dag_then_reimport_is_unchanged(cdp_url, demo_workspace):
    first = _cli(["import", str(SAMPLE), "--workspace", "demo", "--channel", "line", "--json"], cdp_url)
    assert first.returncode == 0, first.stderr + first.stdout
    result = json.loads(first.stdout)
    assert result["status"] == "completed" and result["rows"] == 6 and result["encoding"] == "utf-8"
    assert result["result"]["created"] == 6 and result["result"]["tags_added"] == 7
    again = json.loads(_cli(["import", str(SAMPLE), "--workspace", "demo", "--channel", "line", "--json"],
                            cdp_url).stdout)
    assert again["status"] == "completed"
    assert again["result"]["unchanged"] == 6 and again["result"]["updated"] == 0
    listing = json.loads(_cli(["status", "--workspace", "demo", "--json"], cdp_url).stdout)
    assert [i["import_id"] for i in listing["imports"]] == [again["import_id"], result["import_id"]]


def test_cli_import_of_an_invalid_file_exits_1_and_writes_nothing(cdp_url, demo_workspace, tmp_path):
    bad = write_csv(tmp_path / "bad.csv", LINE_HEADER, [f"{line_id(1)},A,,,,,,,,,", "Ubad,B,,,,,,,,,"])
    before = table_counts(cdp_url)
    proc = _cli(["import", str(bad), "--workspace", "demo", "--channel", "line", "--json"], cdp_url)
    assert proc.returncode == 1, proc.stderr
    result = json.loads(proc.stdout)
    assert result["status"] == "validation_failed" and result["errors"] == 1
    assert "invalid_user_id" in open(result["error_report"], encoding="utf-8-sig").read()
    after = table_counts(cdp_url)
    assert after.pop("imports") == before.pop("imports") + 1
    assert after == before


def test_local_airflow_env_points_at_this_checkout():
    env = local_airflow.environment("postgresql://example/db")
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(ROOT / "dags")
    assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == str(ROOT / "plugins")


@pytest.mark.parametrize("url", ["postgresql://cdp:s3cret@db.example:6543/cdp?sslmode=require",
                                 "host=/work/.data/pg user=postgres dbname=cdp_demo"])
def test_airflow_gets_the_cdp_database_as_connection_cdp_default(url):
    from airflow.models.connection import Connection
    from psycopg2.extensions import parse_dsn

    connection = Connection.from_json(local_airflow.environment(url)["AIRFLOW_CONN_CDP_DEFAULT"], conn_id="cdp_default")
    dsn = parse_dsn(url)
    assert (connection.conn_type, connection.host, connection.login, connection.schema) == (
        "postgres", dsn["host"], dsn["user"], dsn["dbname"])
    assert connection.password == dsn.get("password") and connection.port == (int(dsn["port"]) if "port" in dsn else None)
    assert connection.extra_dejson == ({"sslmode": "require"} if "sslmode" in dsn else {})


def test_files_live_in_object_storage_reached_through_airflow_s_connection(dag, cdp_url, demo_workspace,
                                                                           airflow_on_cdp, monkeypatch, tmp_path):
    """CONTACT_IMPORT_STORAGE on S3 as s3://CONN_ID@bucket/..., credentials and endpoint only in
    that Airflow connection: every task reads and writes through ObjectStoragePath."""
    with s3_server("cdp-files") as (endpoint, client):
        for variable in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            monkeypatch.delenv(variable, raising=False)
        monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps({
            "conn_type": "aws", "login": "testing", "password": "testing",
            "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"}}))
        monkeypatch.setenv("CONTACT_IMPORT_STORAGE", "s3://aws_default@cdp-files/files")
        monkeypatch.setenv("CONTACT_IMPORT_SCRATCH", str(tmp_path / "scratch"))
        run = dag.test(run_conf={**UI_FORM, "file": str(SAMPLE)})
        assert run.state == "success"
        with db.transaction(cdp_url) as conn:
            (record,) = imports.list_imports(conn)
        assert record["status"] == statuses.COMPLETED and record["result"]["created"] == 6
        assert record["work_dir"] == f"s3://aws_default@cdp-files/files/imports/{record['id']}"
        stored = {o["Key"].rsplit("/", 1)[1] for o in
                  client.list_objects_v2(Bucket="cdp-files", Prefix=f"files/imports/{record['id']}/")["Contents"]}
        assert {"upload.csv", "source.utf8.csv", "columns.json", "normalised.csv"} <= stored
        assert len(exported(cdp_url)) == 6
