"""Partner feeds through the library (README.md): each new inbox file becomes one
import, a half-written file waits, a file's content is imported once, and files move to
done/ or failed/ when their imports end. The DAG around it: tests/dags/test_partner_feeds_dag.py."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from contact_import import db, feeds, imports, statuses
from tests.helpers import LINE_HEADER, ctx, exported, line_id, run_recorded, table_counts, write_csv


def rows(first: int, count: int) -> list[str]:
    return [f"{line_id(first + n)},Feed {first + n},f{first + n}@example.com,,,,Partner,,,," for n in range(count)]


def make_feed(tmp_path: Path, ready: str = "stable", name: str = "acme") -> feeds.Feed:
    inbox = tmp_path / "inbox" / name
    inbox.mkdir(parents=True, exist_ok=True)
    return feeds.Feed(name=name, workspace="demo", channel="line", inbox=f"file://{inbox}/*.csv", ready=ready,
                      settle_seconds=0)


def no_wait(seconds: float) -> None:
    pass


def finish_imports(url: str, result: dict) -> list[dict]:
    return [run_recorded(url, run["conf"]["import_id"]) for run in result["trigger"]]


def test_two_files_are_taken_once_each_and_move_to_done_when_imported(cdp_url, demo_workspace, tmp_path):
    feed = make_feed(tmp_path)
    folder = Path(feed.folder(ctx(cdp_url).storage).path)
    write_csv(folder / "monday.csv", LINE_HEADER, rows(0, 3))
    write_csv(folder / "tuesday.csv", LINE_HEADER, rows(100, 2))
    (folder / "notes.txt").write_text("not a csv")

    first = feeds.scan(ctx(cdp_url), feed, sleep=no_wait)
    assert len(first["taken"]) == 2 and len(first["trigger"]) == 2
    conf = first["trigger"][0]["conf"]
    assert conf["workspace"] == "demo" and conf["channel"] == "line" and conf["import_id"] in first["taken"]
    assert first["trigger"][0]["trigger_run_id"] == f"feed__acme__{conf['import_id']}"
    with db.transaction(cdp_url) as conn:
        records = {r["file_name"]: r for r in imports.list_imports(conn)}
    assert set(records) == {"monday.csv", "tuesday.csv"}
    assert all(r["source"] == "feed" and r["status"] == statuses.WAITING for r in records.values())

    # Scanned again before the runs started: nothing new, the same two runs still to trigger
    # (triggering is idempotent by run id), files still in the inbox.
    again = feeds.scan(ctx(cdp_url), feed, sleep=no_wait)
    assert again["taken"] == [] and again["trigger"] == first["trigger"]

    assert [r["status"] for r in finish_imports(cdp_url, first)] == [statuses.COMPLETED, statuses.COMPLETED]
    settled = feeds.scan(ctx(cdp_url), feed, sleep=no_wait)
    assert {Path(m["file"]).name for m in settled["settled"]} == {"monday.csv", "tuesday.csv"}
    assert sorted(p.name for p in (folder / "done").iterdir()) == ["monday.csv", "tuesday.csv"]
    assert sorted(p.name for p in folder.iterdir() if p.is_file()) == ["notes.txt"]
    assert settled["taken"] == [] and settled["trigger"] == []
    assert len(exported(cdp_url)) == 5

    # A rerun after everything settled imports nothing twice.
    assert feeds.scan(ctx(cdp_url), feed, sleep=no_wait) == {"feed": "acme", "settled": [], "taken": [], "trigger": []}
    with db.transaction(cdp_url) as conn:
        assert len(imports.list_imports(conn)) == 2


def test_a_file_still_being_written_waits_until_it_holds_still(cdp_url, demo_workspace, tmp_path):
    feed = make_feed(tmp_path)
    growing = write_csv(Path(feed.folder(ctx(cdp_url).storage).path) / "big.csv", LINE_HEADER, rows(0, 2))

    written = [2]

    def writer_still_writing(seconds: float) -> None:
        with growing.open("a", encoding="utf-8") as out:
            out.write(rows(written[0], 1)[0] + "\n")
        written[0] += 1

    assert feeds.scan(ctx(cdp_url), feed, sleep=writer_still_writing)["taken"] == []
    assert feeds.scan(ctx(cdp_url), feed, sleep=writer_still_writing)["taken"] == []
    done = feeds.scan(ctx(cdp_url), feed, sleep=no_wait)
    assert len(done["taken"]) == 1
    (record,) = finish_imports(cdp_url, done)
    assert record["status"] == statuses.COMPLETED and record["result"]["created"] == 4  # the whole file


def test_with_ready_marker_a_file_waits_for_its_done_marker(cdp_url, demo_workspace, tmp_path):
    feed = make_feed(tmp_path, ready="marker")
    folder = Path(feed.folder(ctx(cdp_url).storage).path)
    write_csv(folder / "batch.csv", LINE_HEADER, rows(0, 2))
    assert feeds.scan(ctx(cdp_url), feed, sleep=no_wait)["taken"] == []
    (folder / "batch.csv.done").write_text("")
    assert len(feeds.scan(ctx(cdp_url), feed, sleep=no_wait)["taken"]) == 1


def test_a_rejected_file_moves_to_failed_and_the_same_content_again_is_not_imported(
        cdp_url, demo_workspace, tmp_path):
    feed = make_feed(tmp_path)
    folder = Path(feed.folder(ctx(cdp_url).storage).path)
    write_csv(folder / "bad.csv", LINE_HEADER, ["not-a-line-id,Bad,,,,,,,,,"])
    write_csv(folder / "good.csv", LINE_HEADER, rows(0, 2))
    first = feeds.scan(ctx(cdp_url), feed, sleep=no_wait)
    ended = sorted(r["status"] for r in finish_imports(cdp_url, first))
    assert ended == [statuses.COMPLETED, statuses.VALIDATION_FAILED]
    feeds.scan(ctx(cdp_url), feed, sleep=no_wait)
    assert [p.name for p in (folder / "failed").iterdir()] == ["bad.csv"]
    assert [p.name for p in (folder / "done").iterdir()] == ["good.csv"]

    # The partner sends good.csv's content again under another name: not imported twice.
    before = table_counts(cdp_url)
    write_csv(folder / "good-resent.csv", LINE_HEADER, rows(0, 2))
    resent = feeds.scan(ctx(cdp_url), feed, sleep=no_wait)
    assert resent["taken"] == [] and resent["trigger"] == []
    assert sorted(p.name for p in (folder / "done").iterdir()) == ["good-resent.csv", "good.csv"]
    assert table_counts(cdp_url) == before


def test_an_unreadable_inbox_fails_its_feed_with_a_clear_message(cdp_url, demo_workspace, tmp_path):
    feed = feeds.Feed(name="gone", workspace="demo", channel="line", inbox=f"file://{tmp_path}/missing/*.csv")
    with pytest.raises(feeds.FeedError, match=r"feed gone: the inbox folder .*missing does not exist"):
        feeds.scan(ctx(cdp_url), feed, sleep=no_wait)
    other = make_feed(tmp_path, name="fine")
    write_csv(Path(other.folder(ctx(cdp_url).storage).path) / "a.csv", LINE_HEADER, rows(0, 1))
    assert len(feeds.scan(ctx(cdp_url), other, sleep=no_wait)["taken"]) == 1


def test_a_feed_is_due_at_its_own_schedule():
    hourly = feeds.Feed(name="h", workspace="demo", channel="line", inbox="/x/*.csv")
    quarterly = feeds.Feed(name="q", workspace="demo", channel="line", inbox="/x/*.csv", schedule="*/15 * * * *")
    at_three, at_quarter_past = datetime(2026, 11, 29, 3, 0, tzinfo=timezone.utc), datetime(2026, 11, 29, 3, 15)
    assert hourly.due(at_three) and quarterly.due(at_three)
    assert not hourly.due(at_quarter_past) and quarterly.due(at_quarter_past)


def test_the_feeds_file_is_checked_with_messages_naming_the_feed(tmp_path, monkeypatch):
    path = tmp_path / "feeds.yaml"
    path.write_text("feeds:\n  - name: acme\n    workspace: demo\n    channel: line\n"
                    "    inbox: ${CONTACT_IMPORT_DATA_DIR}/inbox/acme/*.csv\n    schedule: '*/15 * * * *'\n")
    monkeypatch.setenv("CONTACT_IMPORT_DATA_DIR", str(tmp_path / "data"))
    (feed,) = feeds.load(path)
    assert feed.inbox == f"{tmp_path}/data/inbox/acme/*.csv" and feed.ready == "stable"
    for bad, message in [("    channel: fax\n", "channel"), ("    ready: soon\n", "ready must be one of"),
                         ("    schedule: often\n", "not a cron expression"), ("    colour: red\n", "unknown keys")]:
        lines = [line for line in path.read_text().splitlines(keepends=True)
                 if line.split(":")[0] != bad.split(":")[0]]
        broken = tmp_path / "broken.yaml"
        broken.write_text("".join(lines) + bad)
        with pytest.raises(feeds.FeedError, match=rf"broken.yaml: feed acme: .*{message}"):
            feeds.load(broken)
