"""Who may use a workspace (docs/design.md#who-may-use-a-workspace): each route of the API
for a user the workspace's access does not admit (403 for the workspace named, 404 for its
imports, as for missing ones), for users it names or whose role it names, and for an admin;
and the workspace file's `access` itself. The fixtures of test_plugin_routes: a real CDP
database, callers as Airflow's SimpleAuthManager authenticates them, Airflow's REST API a
stand-in recording the runs triggered and failed."""
from __future__ import annotations

import pytest

from contact_import import db, imports, tasks, workspaces
from tests.helpers import EXAMPLES, LINE_HEADER, csv_bytes, ctx, run_recorded, upload
from tests.integration.test_plugin_routes import (API, act_as, airflow, airflow_user, api,  # noqa: F401 (fixtures)
                                                  shared_email_file, stored_folders)

BOB = airflow_user("bob", "user")  # named by acme's access
CAROL = airflow_user("carol", "OP")  # has a role acme's access names (roles compare in any case)
DAVE = airflow_user("dave", "user")  # may use the import DAG, not acme
ADMIN = airflow_user("root", "admin")  # Airflow's Admin role: every workspace
ALLOWED = (BOB, CAROL, ADMIN)
BAD_FILE = (LINE_HEADER + "\nUbad,Bad,not-an-email,,,,,,,,\n").encode()
NOWHERE = "00000000-0000-0000-0000-000000000000"


def apply_acme(cdp_url, access: dict | None = None) -> None:
    """Workspace acme, set up like demo, used only by bob and the role op (unless `access`
    says otherwise); demo has no `access`: open to all."""
    spec = workspaces.load_file(EXAMPLES / "demo-workspace.yaml")
    spec.update(workspace="acme", name="Acme Corp", default_region=None,
                access={"users": ["bob"], "roles": ["op"]} if access is None else access)
    with db.transaction(cdp_url) as conn:
        workspaces.apply(conn, spec)


@pytest.fixture
def acme(api, cdp_url):
    """Acme with three imports bob uploaded: one waiting, one rejected (error report, GX
    page), one awaiting approval with a warning (warnings report)."""
    apply_acme(cdp_url)
    act_as(BOB)
    waiting = upload(api, csv_bytes(1, start=100), workspace="acme").json()
    rejected = upload(api, BAD_FILE, name="bad.csv", workspace="acme").json()
    assert run_recorded(cdp_url, rejected["id"])["status"] == "validation_failed"
    warned = upload(api, shared_email_file(700), workspace="acme", require_approval="true").json()
    for stage in (tasks.detect_encoding, tasks.map_columns, tasks.validate):
        stage(ctx(cdp_url), warned["id"])
    assert tasks.approval_needed(ctx(cdp_url), warned["id"])  # now awaiting approval
    act_as(airflow_user())
    return {"waiting": waiting["id"], "rejected": rejected["id"], "warned": warned["id"]}


def slugs(api) -> list[str]:
    answer = api.get(f"{API}/workspaces")
    assert answer.status_code == 200, answer.text
    return [w["slug"] for w in answer.json()["workspaces"]]


def test_the_workspace_list_and_the_page_s_drop_down_show_only_the_workspaces_one_may_use(api, cdp_url):
    apply_acme(cdp_url)
    act_as(DAVE)
    assert slugs(api) == ["demo"]
    for caller in ALLOWED:
        act_as(caller)
        assert slugs(api) == ["acme", "demo"]


def test_an_upload_into_a_workspace_one_may_not_use_is_403_and_keeps_nothing(api, airflow, cdp_url):
    apply_acme(cdp_url)
    act_as(DAVE)
    before = stored_folders(cdp_url)
    refused = upload(api, csv_bytes(1), workspace="acme")
    assert refused.status_code == 403
    assert refused.json()["detail"] == ("The Airflow user 'dave' may not use the workspace 'acme';"
                                        " its workspace file's access names who may.")
    assert airflow.triggered == [] and stored_folders(cdp_url) == before
    with db.transaction(cdp_url) as conn:
        assert imports.count_imports(conn) == 0
    assert upload(api, csv_bytes(1)).status_code == 202  # demo is open to all
    for n, caller in enumerate(ALLOWED):
        act_as(caller)
        accepted = upload(api, csv_bytes(1, start=10 + n), workspace="acme")
        assert accepted.status_code == 202, accepted.text
        with db.transaction(cdp_url) as conn:  # whom the API checked, for the DAG's first task
            assert imports.get(conn, accepted.json()["id"])["requested_by"] == caller.user.username


def test_the_imports_list_holds_only_the_workspaces_one_may_use(api, acme):
    act_as(DAVE)
    mine = upload(api, csv_bytes(1, start=300)).json()["id"]
    listed = api.get(f"{API}/imports").json()
    assert [i["id"] for i in listed["imports"]] == [mine] and listed["total"] == 1
    assert api.get(f"{API}/imports", params={"status": "validation_failed"}).json()["total"] == 0
    named = api.get(f"{API}/imports", params={"workspace": "acme"})
    assert named.status_code == 403 and "'acme'" in named.json()["detail"]
    unknown = api.get(f"{API}/imports", params={"workspace": "nope"})
    assert unknown.status_code == 404 and "acme" not in unknown.json()["detail"]
    for caller in ALLOWED:
        act_as(caller)
        everything = api.get(f"{API}/imports").json()
        assert {i["id"] for i in everything["imports"]} == {mine, *acme.values()} and everything["total"] == 4
        assert api.get(f"{API}/imports", params={"workspace": "acme"}).json()["total"] == 3


@pytest.mark.parametrize("route, which", [("", "waiting"), ("/errors.csv", "rejected"),
                                          ("/data_docs.html", "rejected"), ("/warnings.csv", "warned")])
def test_an_import_of_a_workspace_one_may_not_use_is_answered_as_a_missing_one(api, acme, route, which):
    import_id = acme[which]
    act_as(DAVE)
    hidden = api.get(f"{API}/imports/{import_id}{route}")
    missing = api.get(f"{API}/imports/{NOWHERE}{route}")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["detail"] == f"no import {import_id}" and missing.json()["detail"] == f"no import {NOWHERE}"
    for caller in ALLOWED:
        act_as(caller)
        answer = api.get(f"{API}/imports/{import_id}{route}")
        assert answer.status_code == 200, (caller.user.username, answer.text)
        assert answer.content


def test_cancelling_an_import_of_a_workspace_one_may_not_use_is_404_and_changes_nothing(api, airflow, acme):
    import_id = acme["waiting"]
    act_as(DAVE)
    refused = api.post(f"{API}/imports/{import_id}/cancel")
    assert refused.status_code == 404 and refused.json()["detail"] == f"no import {import_id}"
    assert airflow.failed == []
    act_as(BOB)
    assert api.get(f"{API}/imports/{import_id}").json()["status"] == "waiting"
    cancelled = api.post(f"{API}/imports/{import_id}/cancel")
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
    assert len(airflow.failed) == 1


def test_an_admin_and_a_role_may_cancel_in_a_workspace_they_do_not_name(api, airflow, acme):
    act_as(ADMIN)
    assert api.post(f"{API}/imports/{acme['waiting']}/cancel").status_code == 202
    act_as(CAROL)
    assert api.post(f"{API}/imports/{acme['warned']}/cancel").status_code == 202


def test_the_sample_file_of_a_workspace_one_may_not_use_is_403(api, cdp_url):
    apply_acme(cdp_url)
    act_as(DAVE)
    refused = api.get(f"{API}/templates/line.csv", params={"workspace": "acme"})
    assert refused.status_code == 403 and "'acme'" in refused.json()["detail"]
    assert api.get(f"{API}/templates/line.csv").status_code == 200  # no workspace: no workspace's columns
    for caller in ALLOWED:
        act_as(caller)
        allowed = api.get(f"{API}/templates/line.csv", params={"workspace": "acme"})
        assert allowed.status_code == 200 and "VIP Level" in allowed.content.decode("utf-8-sig").splitlines()[0]


def test_an_empty_access_leaves_a_workspace_to_admins_and_dropping_it_opens_it(api, cdp_url):
    apply_acme(cdp_url, access={})
    for caller in (BOB, CAROL, DAVE):
        act_as(caller)
        assert slugs(api) == ["demo"]
    act_as(ADMIN)
    assert slugs(api) == ["acme", "demo"]
    spec = workspaces.load_file(EXAMPLES / "demo-workspace.yaml")
    spec.update(workspace="acme", name="Acme Corp", default_region=None)  # no access: open to all
    with db.transaction(cdp_url) as conn:
        workspaces.apply(conn, spec)
    act_as(DAVE)
    assert slugs(api) == ["acme", "demo"]


@pytest.mark.parametrize("access", [["bob"], {"users": "bob"}, {"users": ["bob", ""]}, {"people": ["bob"]},
                                    {"roles": [3]}])
def test_a_workspace_file_s_access_is_a_mapping_of_lists_of_names(tmp_path, access):
    import yaml

    path = tmp_path / "ws.yaml"
    path.write_text(yaml.safe_dump({"workspace": "acme", "access": access}))
    with pytest.raises(workspaces.WorkspaceFileError, match="access"):
        workspaces.load_file(path)


def test_the_airflow_user_s_name_and_role_are_what_access_sees():
    assert CAROL.access == workspaces.User("carol", frozenset({"op"}))
    assert ADMIN.access.admin and not BOB.access.admin
    assert airflow_user("nobody", None).access.roles == frozenset()
