"""Imports through the library's stages (the DAG's tasks without Airflow), checked via export."""
from pathlib import Path

from contact_import import db, imports, intake, statuses, tasks
from tests.helpers import EXAMPLES, LINE_HEADER, ctx, exported, line_id, run_stages, table_counts, write_csv

SAMPLE = EXAMPLES / "line-contacts.csv"


def test_line_import_creates_contacts_customers_and_tags(cdp_url, demo_workspace):
    record = run_stages(cdp_url, SAMPLE)
    assert record["status"] == statuses.COMPLETED
    assert record["total_rows"] == record["processed_rows"] == 6
    assert record["result"]["created"] == 6 and record["result"]["customers_created"] == 6
    assert record["result"]["bound"] == 3
    assert {"detect_encoding", "validate.expectations", "validate.normalise", "validate.read"} <= set(
        record["timings"])
    contacts = exported(cdp_url)
    ming = contacts["U4af4980629a2b2c3d4e5f60718293a4b"]
    assert ming["name"] == "王小明" and ming["phone"] == "886911223344" and ming["gender"] == "male"
    assert ming["tags"] == sorted(["VIP", "台北"])
    assert ming["attributes"] == {"vip_level": "Gold", "points": 1200}
    assert ming["binding"] == {"teammate": "amy@shop.example", "store": "S001"}
    mary = contacts["U0123456789abcdef0123456789abcdef"]
    assert mary["email"] == "mary@example.com" and mary["birthday"] == "1985-12-01"
    assert contacts["U11111111111111111111111111111111"]["tags"] == ["台中", "回購客"]
    assert table_counts(cdp_url)["customers"] == 6


def test_reimporting_the_same_file_changes_nothing(cdp_url, demo_workspace):
    run_stages(cdp_url, SAMPLE)
    before = exported(cdp_url)
    counts = table_counts(cdp_url)
    record = run_stages(cdp_url, SAMPLE)
    assert record["status"] == statuses.COMPLETED
    assert record["result"]["unchanged"] == 6
    assert {k: v for k, v in record["result"].items() if k != "unchanged"} == dict.fromkeys(
        ["created", "updated", "customers_created", "tags_added", "tags_removed", "bound", "unbound"], 0)
    assert exported(cdp_url) == before
    assert {k: v for k, v in table_counts(cdp_url).items() if k != "imports"} == \
        {k: v for k, v in counts.items() if k != "imports"}


def test_invalid_user_id_rejects_the_file_and_writes_nothing(cdp_url, demo_workspace, tmp_path):
    bad = write_csv(tmp_path / "bad.csv", LINE_HEADER, [
        f"{line_id(1)},Good Row,good@example.com,886911000001,male,1990-01-01,VIP,,,,",
        "U-not-a-line-id,Bad Row,bad@example.com,886911000002,female,1990-01-02,,,,,",
    ])
    before = table_counts(cdp_url)
    record = run_stages(cdp_url, bad)
    assert record["status"] == statuses.VALIDATION_FAILED
    assert record["errors"] == 1
    report = open(record["error_report"], encoding="utf-8-sig").read().splitlines()
    assert report[0] == "row,column,value,code,message"
    assert report[1].startswith("3,LINE User ID,U-not-a-line-id,invalid_user_id,")
    assert "U-not-a-line-id" in (Path(record["work_dir"]) / "data_docs.html").read_text(encoding="utf-8")
    after = table_counts(cdp_url)
    assert after.pop("imports") == before.pop("imports") + 1
    assert after == before


def test_rows_sharing_an_email_share_one_profile_in_file_order(cdp_url, demo_workspace, tmp_path):
    f = write_csv(tmp_path / "shared.csv", LINE_HEADER, [
        f"{line_id(1)},First,same@example.com,,,,,,,,",
        f"{line_id(2)},Second,SAME@example.com,886911000009,,,,,,,",
    ])
    record = run_stages(cdp_url, f)
    assert record["status"] == statuses.COMPLETED
    assert record["result"]["created"] == 2 and record["result"]["customers_created"] == 1
    assert record["warnings"] == {"profile_shared": 1}
    warnings_report = (Path(record["work_dir"]) / "warnings.csv").read_text(encoding="utf-8-sig").splitlines()
    assert warnings_report[1].startswith("3,email,same@example.com,profile_shared,")
    # the folded copy replaces the validated one: no second copy of the file stays behind
    assert sorted(p.name for p in Path(record["work_dir"]).glob("normalised*")) == ["normalised.csv"]
    contacts = exported(cdp_url)
    a, b = contacts[line_id(1)], contacts[line_id(2)]
    assert a["customer_id"] == b["customer_id"]
    assert a["name"] == "Second" and a["phone"] == "886911000009"


def test_empty_cells_change_nothing_and_overwrite_mode_replaces_tags(cdp_url, demo_workspace, tmp_path):
    run_stages(cdp_url, write_csv(tmp_path / "a.csv", LINE_HEADER, [
        f"{line_id(1)},Amy,amy@example.com,886911000001,female,1990-01-01,\"A,B\",,,Gold,10",
        f"{line_id(2)},Bob,bob@example.com,,,,\"A\",,,,",
    ]))
    record = run_stages(cdp_url, write_csv(tmp_path / "b.csv", LINE_HEADER, [
        f"{line_id(1)},,,,,,C,,,,",
        f"{line_id(2)},,,,,,,,,,",
    ]), tag_mode="overwrite")
    assert record["result"]["updated"] == 2
    assert record["result"]["tags_added"] == 1 and record["result"]["tags_removed"] == 3
    contacts = exported(cdp_url)
    assert contacts[line_id(1)]["tags"] == ["C"] and contacts[line_id(2)]["tags"] == []
    assert contacts[line_id(1)]["name"] == "Amy" and contacts[line_id(1)]["attributes"] == {
        "vip_level": "Gold", "points": 10}
    assert contacts[line_id(1)]["birthday"] == "1990-01-01"


def test_preview_counts_equal_what_the_import_does(cdp_url, demo_workspace, tmp_path):
    run_stages(cdp_url, SAMPLE)
    f = write_csv(tmp_path / "mixed.csv", LINE_HEADER, [
        "U4af4980629a2b2c3d4e5f60718293a4b,王小明,ming@example.com,,,,新標籤,UNASSIGNED,,,",  # changed
        "U0123456789abcdef0123456789abcdef,Mary Chan,,,,,,,,,",  # unchanged
        f"{line_id(9)},New Person,new@example.com,,,,,amy@shop.example,S001,,",  # created
    ])
    record = run_stages(cdp_url, f, require_approval=True)
    assert record["status"] == statuses.COMPLETED
    assert record["preview"] == record["result"]
    assert record["result"] == {"created": 1, "updated": 1, "unchanged": 1, "customers_created": 1,
                                "tags_added": 1, "tags_removed": 0, "bound": 1, "unbound": 1}


def test_reimporting_rows_that_share_a_profile_is_unchanged(cdp_url, demo_workspace, tmp_path):
    f = write_csv(tmp_path / "shared.csv", LINE_HEADER, [
        f"{line_id(1)},First,same@example.com,,male,,,,,Gold,1",
        f"{line_id(2)},Other,other@example.com,886911000002,,,,,,,",
        f"{line_id(3)},Second,same@example.com,886911000009,,,,,,,2",
        f"{line_id(4)},Third,,886911000009,,,,,,Silver,",
    ])
    first = run_stages(cdp_url, f)
    assert first["result"]["customers_created"] == 2
    contacts = exported(cdp_url)
    assert contacts[line_id(1)]["customer_id"] == contacts[line_id(4)]["customer_id"]
    assert (contacts[line_id(1)]["name"], contacts[line_id(1)]["gender"]) == ("Third", "male")
    assert contacts[line_id(1)]["attributes"] == {"vip_level": "Silver", "points": 2}
    again = run_stages(cdp_url, f)
    assert again["result"]["unchanged"] == 4 and again["result"]["updated"] == 0
    assert exported(cdp_url) == contacts


def test_shared_profiles_in_a_file_without_attribute_columns(cdp_url, demo_workspace, tmp_path):
    f = write_csv(tmp_path / "plain.csv", "LINE User ID,Name,Email", [
        f"{line_id(1)},A,same@example.com", f"{line_id(2)},B,same@example.com", f"{line_id(3)},C,"])
    record = run_stages(cdp_url, f)
    assert record["status"] == statuses.COMPLETED and record["result"]["customers_created"] == 2
    assert {c["name"] for c in exported(cdp_url).values()} == {"B", "C"}


def test_preview_equals_the_import_for_shared_profiles_and_overwrite_removals(cdp_url, demo_workspace, tmp_path):
    run_stages(cdp_url, SAMPLE)
    f = write_csv(tmp_path / "mixed.csv", LINE_HEADER, [
        "U4af4980629a2b2c3d4e5f60718293a4b,王小明,,,,,VIP,,,,",  # overwrite: drops 台北
        "U0123456789abcdef0123456789abcdef,Mary Chan,,,,,,,,,",  # overwrite with empty tags: drops 新客
        f"{line_id(7)},Shares Ming,ming@example.com,,,,新客,,,,",  # new contact on Ming's customer
        f"{line_id(8)},New,new8@example.com,,,,,,,,",
        f"{line_id(9)},Shares New,new8@example.com,,,,,,,,",  # shares the new customer
    ])
    record = run_stages(cdp_url, f, tag_mode="overwrite", require_approval=True)
    assert record["status"] == statuses.COMPLETED
    assert record["preview"] == record["result"]
    assert record["result"]["tags_removed"] == 2 and record["result"]["customers_created"] == 1
    assert record["warnings"] == {"profile_shared": 2}  # row 4 with row 2 (Ming), row 6 with row 5


def test_a_crash_is_recorded_as_failed_but_never_overrides_a_finished_import(cdp_url, demo_workspace, tmp_path):

    import_id = intake.create_import(ctx(cdp_url), workspace="demo", channel="line", tag_mode="append",
                                     file=str(SAMPLE), source="cli")
    tasks.failed(ctx(cdp_url), import_id, "upsert_contacts: server closed the connection")
    with db.transaction(cdp_url) as conn:
        record = imports.get(conn, import_id)
    assert record["status"] == statuses.FAILED and "server closed" in record["message"]
    assert record["finished_at"] is not None
    done = run_stages(cdp_url, SAMPLE)
    tasks.failed(ctx(cdp_url), done["id"], "late callback")
    with db.transaction(cdp_url) as conn:
        assert imports.get(conn, done["id"])["status"] == statuses.COMPLETED
    tasks.failed(ctx(cdp_url), "00000000-0000-0000-0000-000000000000", "no such import")


def test_without_approval_no_preview_is_made_and_the_upsert_reports_the_warnings(cdp_url, demo_workspace,
                                                                                   tmp_path):
    """The preview costs a third of the upsert: made only when someone will look at it. The
    warnings and their report come from the import itself."""
    f = write_csv(tmp_path / "shared.csv", LINE_HEADER, [
        f"{line_id(1)},First,same@example.com,,,,,,,,",
        f"{line_id(2)},Second,same@example.com,,,,,,,,",
    ])
    record = run_stages(cdp_url, f)
    assert record["status"] == statuses.COMPLETED and record["preview"] is None
    assert "validate.preview" not in record["timings"]
    assert record["warnings"] == {"profile_shared": 1}
    report = (Path(record["work_dir"]) / "warnings.csv").read_text(encoding="utf-8-sig").splitlines()
    assert len(report) == 2 and report[1].startswith("3,email,same@example.com,profile_shared,")
    with_preview = run_stages(cdp_url, f, require_approval=True)
    assert with_preview["preview"]["unchanged"] == 2 and with_preview["warnings"] == {"profile_shared": 1}
    assert with_preview["preview"] == with_preview["result"]
