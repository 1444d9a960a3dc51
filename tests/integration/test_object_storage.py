"""Files in object storage (docs/operations.md): with CONTACT_IMPORT_STORAGE and a feed's inbox
on S3 (moto's S3 server on localhost), a feed takes its files, every stage fetches what it
needs into a local folder and puts back what it writes (so tasks may run on different
workers), reports are read from S3, and processed files move to done/ / failed/ in the bucket."""
from __future__ import annotations

import csv
import io
import os

import pytest

from contact_import import db, feeds, import_folder, imports, intake, statuses, storage, tasks
from tests.helpers import LINE_HEADER, ctx, exported, free_port, line_id, run_recorded, write_csv
from tests.s3_server import forget_filesystems, s3_server, start_again, stop

IMPORTS_BUCKET, INBOX_BUCKET = "cdp-files", "partner-inbox"


@pytest.fixture
def s3(monkeypatch, tmp_path):
    with s3_server(IMPORTS_BUCKET, INBOX_BUCKET) as (endpoint, client):
        for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("CONTACT_IMPORT_STORAGE", f"s3://{IMPORTS_BUCKET}/files")
        monkeypatch.setenv("CONTACT_IMPORT_SCRATCH", str(tmp_path / "scratch"))
        yield client


def put(client, key: str, lines: list[str]) -> None:
    client.put_object(Bucket=INBOX_BUCKET, Key=key, Body=("\n".join([LINE_HEADER, *lines]) + "\n").encode())


def keys(client, bucket: str, prefix: str) -> list[str]:
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []))


def test_a_feed_on_s3_imports_through_storage_on_s3(cdp_url, demo_workspace, s3, tmp_path):
    put(s3, "acme/good.csv", [f"{line_id(n)},S3 {n},s3-{n}@example.com,,,,Cloud,,,," for n in range(4)])
    put(s3, "acme/bad.csv", ["not-a-line-id,Bad,,,,,,,,,"])
    feed = feeds.Feed(name="acme", workspace="demo", channel="line", inbox=f"s3://{INBOX_BUCKET}/acme/*.csv",
                      settle_seconds=0)

    found = feeds.scan(ctx(cdp_url), feed, sleep=lambda seconds: None)
    assert len(found["taken"]) == 2
    records = {r["file_name"]: r for r in (run_recorded(cdp_url, run["conf"]["import_id"])
                                           for run in found["trigger"])}
    good, bad = records["good.csv"], records["bad.csv"]
    assert good["status"] == statuses.COMPLETED and good["result"]["created"] == 4
    assert exported(cdp_url)[line_id(3)]["tags"] == ["Cloud"]

    # Everything the stages keep is in the bucket, nothing in the local scratch folder.
    stored = keys(s3, IMPORTS_BUCKET, f"files/imports/{good['id']}/")
    names = {key.rsplit("/", 1)[1] for key in stored}
    assert {"upload.csv", import_folder.UTF8, import_folder.COLUMNS, import_folder.NORMALISED} <= names
    assert good["work_dir"] == f"s3://{IMPORTS_BUCKET}/files/imports/{good['id']}"
    assert not any((tmp_path / "scratch").glob("*/*"))

    # The rejected file's report, in English and Chinese, read back from S3.
    assert bad["status"] == statuses.VALIDATION_FAILED
    assert bad["error_report"] == f"s3://{IMPORTS_BUCKET}/files/imports/{bad['id']}/errors.csv"
    report = ctx(cdp_url).storage.path(bad["error_report"]).read_text(encoding="utf-8-sig")
    assert list(csv.DictReader(io.StringIO(report)))[0]["code"] == "invalid_user_id"
    assert import_folder.report_path(ctx(cdp_url).storage.path(bad["error_report"]), "zh-TW").exists()
    assert imports.summary(bad)["data_docs"] is None or imports.summary(bad)["data_docs"].startswith("s3://")

    settled = feeds.scan(ctx(cdp_url), feed, sleep=lambda seconds: None)
    assert len(settled["settled"]) == 2
    assert keys(s3, INBOX_BUCKET, "acme/") == ["acme/done/good.csv", "acme/failed/bad.csv"]


def test_an_unreachable_bucket_fails_the_feed_with_a_clear_message(cdp_url, demo_workspace, s3, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    forget_filesystems()
    feed = feeds.Feed(name="lost", workspace="demo", channel="line", inbox="s3://no-such-bucket/x/*.csv")
    with pytest.raises(feeds.FeedError, match=r"feed lost: the inbox s3://no-such-bucket/x/\*\.csv cannot be read"):
        feeds.scan(ctx(cdp_url), feed, sleep=lambda seconds: None)


def test_storage_unreachable_as_a_rejection_is_published_fails_the_step_clearly_and_its_retry_rejects(
        cdp_url, demo_workspace, s3, tmp_path, monkeypatch):
    """S3 goes down after the step read the file and wrote its reports locally: the step
    fails with `storage_unavailable` (Airflow retries it), the import is not recorded as
    rejected with reports that are not there, no report is left half-written; once S3 is
    back, the retry rejects the file with its reports in the bucket."""
    empty = write_csv(tmp_path / "empty.csv", LINE_HEADER, [])
    import_id = intake.create_import(ctx(cdp_url), workspace="demo", channel="line", tag_mode="append",
                                     file=str(empty))
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    write_report = tasks.write_report

    def then_storage_goes_down(*args, **kwargs):
        write_report(*args, **kwargs)
        stop(endpoint)

    monkeypatch.setattr(tasks, "write_report", then_storage_goes_down)
    with pytest.raises(storage.StorageFault) as failed:
        tasks.run(tasks.detect_encoding, ctx(cdp_url), import_id)
    assert str(failed.value).startswith("storage_unavailable: The import's file storage could not be reached"
                                        f" (writing {import_folder.ERRORS} to s3://{IMPORTS_BUCKET}/files/imports/")
    monkeypatch.setattr(tasks, "write_report", write_report)
    start_again(endpoint)

    with db.transaction(cdp_url) as conn:
        record = imports.get(conn, import_id)
    assert record["status"] == statuses.VALIDATING and record["error_report"] is None
    assert keys(s3, IMPORTS_BUCKET, f"files/imports/{import_id}/") == [f"files/imports/{import_id}/upload.csv"]
    assert not any((tmp_path / "scratch").glob("*/*"))

    with pytest.raises(tasks.StageError, match="validation failed"):  # Airflow's retry
        tasks.run(tasks.detect_encoding, ctx(cdp_url), import_id)
    with db.transaction(cdp_url) as conn:
        record = imports.get(conn, import_id)
    assert record["status"] == statuses.VALIDATION_FAILED
    report = ctx(cdp_url).storage.path(record["error_report"]).read_text(encoding="utf-8-sig")
    assert [row["code"] for row in csv.DictReader(io.StringIO(report))] == ["file_empty"]
    assert import_folder.report_path(ctx(cdp_url).storage.path(record["error_report"]), "zh-TW").exists()
