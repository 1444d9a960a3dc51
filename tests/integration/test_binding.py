"""OMO binding (docs/design.md#the-import-file): bind, rebind, UNASSIGNED, empty cells, managers at two stores.

The per-rule error codes are in test_error_codes.py; here is what an accepted file does.
"""
from contact_import import db, statuses, workspaces
from tests.helpers import EXAMPLES, exported, line_id, run_stages, write_csv

HEADER = "LINE User ID,Name,Binding Teammate,Store Location Code"


def bindings(url) -> dict:
    return {user: c["binding"] for user, c in exported(url).items()}


def test_bind_rebind_unassign_and_leave_alone(cdp_url, demo_workspace, tmp_path):
    first = run_stages(cdp_url, write_csv(tmp_path / "1.csv", HEADER, [
        f"{line_id(1)},A,amy@shop.example,S001",
        f"{line_id(2)},B,AMY@Shop.Example,S001",  # teammate email matched case-insensitively
        f"{line_id(3)},C,ben@shop.example,S002",
        f"{line_id(4)},D,,",
    ]), require_approval=True)
    assert first["status"] == statuses.COMPLETED
    assert (first["result"]["bound"], first["result"]["unbound"]) == (3, 0) == (first["preview"]["bound"],
                                                                           first["preview"]["unbound"])
    assert bindings(cdp_url) == {
        line_id(1): {"teammate": "amy@shop.example", "store": "S001"},
        line_id(2): {"teammate": "amy@shop.example", "store": "S001"},
        line_id(3): {"teammate": "ben@shop.example", "store": "S002"},
        line_id(4): None,
    }
    second = run_stages(cdp_url, write_csv(tmp_path / "2.csv", HEADER, [
        f"{line_id(1)},A,ben@shop.example,S002",  # rebound: another teammate at another store
        f"{line_id(2)},B,UNASSIGNED,",            # unbound
        f"{line_id(3)},C,,",                      # empty cells leave the binding
        f"{line_id(4)},D,UNASSIGNED,",            # nothing to unbind
    ]), require_approval=True)
    assert second["status"] == statuses.COMPLETED
    assert (second["result"]["bound"], second["result"]["unbound"]) == (1, 1)
    assert second["preview"] == second["result"]
    assert bindings(cdp_url) == {
        line_id(1): {"teammate": "ben@shop.example", "store": "S002"},
        line_id(2): None,
        line_id(3): {"teammate": "ben@shop.example", "store": "S002"},
        line_id(4): None,
    }
    again = run_stages(cdp_url, write_csv(tmp_path / "3.csv", HEADER, [f"{line_id(1)},A,ben@shop.example,S002"]))
    assert (again["result"]["bound"], again["result"]["unbound"]) == (0, 0)  # idempotent: already bound so


def test_a_manager_is_bound_at_each_of_two_stores(cdp_url, demo_workspace, tmp_path):
    record = run_stages(cdp_url, write_csv(tmp_path / "m.csv", HEADER, [
        f"{line_id(1)},A,ben@shop.example,S001", f"{line_id(2)},B,ben@shop.example,S002"]))
    assert record["status"] == statuses.COMPLETED and record["result"]["bound"] == 2
    assert {b["store"] for b in bindings(cdp_url).values()} == {"S001", "S002"}


def test_whatsapp_contacts_are_bound_too(cdp_url, demo_workspace, tmp_path):
    record = run_stages(cdp_url, write_csv(tmp_path / "w.csv", "WhatsApp User ID,Name,Binding Teammate,Store Location Code",
                                           ["886911223344,Wu,amy@shop.example,S001"]), channel="whatsapp")
    assert record["status"] == statuses.COMPLETED and record["result"]["bound"] == 1
    assert bindings(cdp_url) == {"886911223344": {"teammate": "amy@shop.example", "store": "S001"}}


def test_a_workspace_without_omo_imports_files_without_binding_columns(cdp_url, tmp_path):
    spec = workspaces.load_file(EXAMPLES / "demo-workspace.yaml")
    spec["omo"] = False
    with db.transaction(cdp_url) as conn:
        workspaces.apply(conn, spec)
    plain = run_stages(cdp_url, write_csv(tmp_path / "p.csv", "LINE User ID,Name", [f"{line_id(1)},A"]))
    assert plain["status"] == statuses.COMPLETED and bindings(cdp_url) == {line_id(1): None}
    bound = run_stages(cdp_url, write_csv(tmp_path / "b.csv", HEADER, [f"{line_id(2)},B,amy@shop.example,S001"]))
    assert bound["status"] == statuses.VALIDATION_FAILED and bound["errors"] == 1
    assert set(bindings(cdp_url)) == {line_id(1)}  # nothing of the rejected file was written


def test_facebook_rows_with_empty_binding_columns_import(cdp_url, demo_workspace, tmp_path):
    record = run_stages(cdp_url, write_csv(tmp_path / "f.csv", "Facebook User ID,Name,Binding Teammate,Store Location Code",
                                           ["5512345678901234,Ann,,"]), channel="facebook")
    assert record["status"] == statuses.COMPLETED and record["result"]["bound"] == 0
    assert bindings(cdp_url) == {"5512345678901234": None}
