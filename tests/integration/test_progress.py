"""A running import says which step it is in and how far that step got, chunk by chunk:
what someone reading the import (API, page, `contact-import status`) sees between chunks."""
from __future__ import annotations

import datetime

import pytest

from contact_import import binding, cli, db, import_folder, imports, intake, stages, statuses, tasks, upsert
from tests.helpers import csv_bytes, ctx

ROWS = 10


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setenv("CONTACT_IMPORT_VALIDATE_CHUNK_ROWS", "3")  # validation: 3, 6, 9, 10
    monkeypatch.setenv("CONTACT_IMPORT_CHUNK_ROWS", "4")  # preview, upsert, bindings: 4, 8, 10


class Watch:
    """Reads the import, as another process would, whenever a step ends a chunk (after the
    step's progress is committed) and whenever a task ends."""

    def __init__(self, url: str, monkeypatch):
        self.url, self.import_id, self.seen = url, None, []
        real_validate, real_preview, real_run, real_bind = (stages.validate_file, stages.preview, upsert.run,
                                                            binding.apply_file)

        def after(callback):
            if callback is None:
                return None
            return lambda rows: (callback(rows), self.look())

        def validate_file(*args, on_progress=None, **kwargs):
            return real_validate(*args, on_progress=after(on_progress), **kwargs)

        def preview(*args, on_progress=None, **kwargs):
            return real_preview(*args, on_progress=after(on_progress), **kwargs)

        def apply_file(*args, on_progress=None, **kwargs):
            return real_bind(*args, on_progress=after(on_progress), **kwargs)

        def run(*args, should_stop=lambda: False, dry_run=False, **kwargs):
            if dry_run:
                return real_run(*args, should_stop=should_stop, dry_run=True, **kwargs)

            def before_chunk():  # the chunks before it are committed, with their progress
                self.look()
                return should_stop()
            return real_run(*args, should_stop=before_chunk, **kwargs)

        monkeypatch.setattr(stages, "validate_file", validate_file)
        monkeypatch.setattr(stages, "preview", preview)
        monkeypatch.setattr(binding, "apply_file", apply_file)
        monkeypatch.setattr(upsert, "run", run)

    def look(self) -> None:
        with db.transaction(self.url) as conn:
            self.seen.append(imports.summary(imports.get(conn, self.import_id))["progress"])

    def run_import(self, content: bytes, tmp_path, require_approval: bool = False) -> dict:
        path = tmp_path / "contacts.csv"
        path.write_bytes(content)
        self.import_id = intake.create_import(ctx(self.url), workspace="demo", channel="line", tag_mode="append",
                                              file=str(path), source="cli", require_approval=require_approval)
        self.seen = []
        for task in (tasks.detect_encoding, tasks.map_columns, tasks.validate):
            task(ctx(self.url), self.import_id)
            self.look()
        if tasks.approval_needed(ctx(self.url), self.import_id):
            self.look()
        for task in (tasks.upsert_contacts, tasks.bind_teammates, tasks.finalize):
            task(ctx(self.url), self.import_id)
            self.look()
        with db.transaction(self.url) as conn:
            return imports.get(conn, self.import_id)

    def steps(self) -> list[tuple[str, int] | None]:
        return [(p["step"], p["rows_done"]) if p else None for p in self.seen]


def test_each_step_reports_its_rows_chunk_by_chunk_up_to_the_file_s(cdp_url, demo_workspace, small_chunks,
                                                                    monkeypatch, tmp_path):
    watch = Watch(cdp_url, monkeypatch)
    record = watch.run_import(csv_bytes(ROWS), tmp_path, require_approval=True)
    assert record["status"] == statuses.COMPLETED and record["result"]["created"] == ROWS
    assert watch.steps() == [
        ("reading", 10), ("reading", 10),  # after detect_encoding, map_columns
        ("checking", 3), ("checking", 6), ("checking", 9), ("checking", 10),
        ("preview", 4), ("preview", 8), ("preview", 10), ("preview", 10),
        None,  # awaiting approval: nothing runs
        ("importing", 0), ("importing", 4), ("importing", 8), ("importing", 10),
        ("binding", 4), ("binding", 8), ("binding", 10), ("binding", 10),
        None,  # completed
    ]
    running = [p for p in watch.seen if p]
    assert {p["rows_total"] for p in running} == {ROWS}
    moved = [p for p in running if p["rows_done"] > 0]
    assert all(p["rows_per_second"] > 0 and p["seconds_left"] is not None for p in moved)
    assert all(p["seconds_left"] == 0 for p in moved if p["rows_done"] == ROWS)


def test_rows_left_out_as_unchanged_count_as_done(cdp_url, demo_workspace, small_chunks, monkeypatch, tmp_path):
    watch = Watch(cdp_url, monkeypatch)
    assert watch.run_import(csv_bytes(ROWS), tmp_path)["status"] == statuses.COMPLETED
    again = watch.run_import(csv_bytes(ROWS), tmp_path)  # the same rows: validation leaves them all out
    assert again["result"]["unchanged"] == ROWS
    left_out = ctx(cdp_url).storage.path(again["work_dir"]) / import_folder.UNCHANGED
    assert left_out.read_text(encoding="utf-8").count("\n") == ROWS
    changes = [seen for n, seen in enumerate(watch.steps()) if n == 0 or seen != watch.steps()[n - 1]]
    assert changes == [("reading", 10), ("checking", 3), ("checking", 6), ("checking", 9), ("checking", 10),
                       ("importing", 10), ("binding", 10), None]
    # done before the step started is not its pace: no rate, no estimate
    assert watch.seen[-2]["rows_per_second"] is None and watch.seen[-2]["seconds_left"] is None


def test_the_rate_and_time_left_leave_out_rows_done_before_the_step_started():
    started = datetime.datetime(2026, 12, 3, 9, 0, tzinfo=datetime.timezone.utc)
    record = {"status": statuses.IMPORTING, "step": "importing", "total_rows": 1000, "step_rows": 300,
              "step_rows_at_start": 100, "step_started_at": started,
              "step_updated_at": started + datetime.timedelta(seconds=10)}
    assert imports.progress(record) == {"step": "importing", "rows_done": 300, "rows_total": 1000,
                                        "rows_per_second": 20.0, "seconds_left": 35.0}
    # read 2 s after the last chunk: the estimate counts down between chunks
    read_later = {**record, "read_at": started + datetime.timedelta(seconds=12)}
    assert imports.progress(read_later)["seconds_left"] == 33.0
    assert imports.progress({**record, "read_at": started + datetime.timedelta(hours=1)})["seconds_left"] == 0
    reading = {**record, "step": "reading", "status": statuses.VALIDATING, "total_rows": None, "step_rows": 0,
               "step_rows_at_start": 0, "step_updated_at": started}
    assert imports.progress(reading) == {"step": "reading", "rows_done": 0, "rows_total": None,
                                         "rows_per_second": None, "seconds_left": None}
    for status in (statuses.WAITING, statuses.AWAITING_APPROVAL, *statuses.FINISHED):
        assert imports.progress({**record, "status": status}) is None


def test_status_shows_the_running_step_in_one_line(cdp_url, demo_workspace, capsys):
    with db.transaction(cdp_url) as conn:
        import_id = imports.create(conn, workspace_id=demo_workspace.id, channel="line", tag_mode="append",
                                   file_uri="/nowhere/upload.csv", file_name="upload.csv", source="cli")
        statuses.change(conn, import_id, statuses.VALIDATING, total_rows=152_645)
        imports.start_step(conn, import_id, imports.CHECKING)
    with db.transaction(cdp_url) as conn:
        imports.record_progress(conn, import_id, imports.CHECKING, 50_000)
        imports.record_progress(conn, import_id, imports.READING, 7)  # a step it has left: no change

    assert cli.main(["--db", cdp_url, "status", import_id]) == 0
    lines = capsys.readouterr().out.splitlines()
    (line,) = [line for line in lines if "checking" in line]
    assert line.strip().startswith("checking 50,000/152,645 rows, ") and "rows/s, about " in line
    assert line.endswith(" left")

    assert cli.main(["--db", cdp_url, "status"]) == 0
    (listed,) = capsys.readouterr().out.splitlines()
    assert listed.startswith(import_id) and "validating" in listed and "checking 50,000/152,645 rows" in listed
