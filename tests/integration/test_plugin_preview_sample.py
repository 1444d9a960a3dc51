"""The upload API answers an import awaiting approval with its preview's sample of changes
(the fixtures of test_plugin_routes: a real CDP database, Airflow's REST API a stand-in)."""
from __future__ import annotations

from contact_import import tasks
from tests.helpers import LINE_HEADER, ctx, line_id, run_recorded, upload
from tests.integration.test_plugin_routes import API, airflow, api  # noqa: F401  (fixtures)


def test_an_import_awaiting_approval_answers_its_first_changes(api, cdp_url):  # noqa: F811
    stored = "\n".join([LINE_HEADER, f"{line_id(1)},Ann,,,,,VIP,,,,"]) + "\n"
    first = upload(api, stored.encode()).json()
    assert run_recorded(cdp_url, first["id"])["status"] == "completed"
    assert api.get(f"{API}/imports/{first['id']}").json()["preview_sample"] is None  # imported without approval

    renamed = "\n".join([LINE_HEADER, f"{line_id(1)},Anne,,,,,,,,,", f"{line_id(2)},Ben,,,,,,amy@shop.example,S001,,"])
    waiting = upload(api, (renamed + "\n").encode(), require_approval="true").json()
    assert waiting["preview_sample"] is None  # not validated yet
    for stage in (tasks.detect_encoding, tasks.map_columns, tasks.validate):
        stage(ctx(cdp_url), waiting["id"])
    assert tasks.approval_needed(ctx(cdp_url), waiting["id"])

    answer = api.get(f"{API}/imports/{waiting['id']}").json()
    assert answer["status"] == "awaiting_approval"
    assert answer["preview_sample"] == [
        {"row": 2, "user_id": line_id(1), "change": "field", "field": "name", "old": "Ann", "new": "Anne",
         "added": [], "removed": []},
        {"row": 3, "user_id": line_id(2), "change": "new_contact", "field": None, "old": None, "new": None,
         "added": [], "removed": []},
        {"row": 3, "user_id": line_id(2), "change": "binding", "field": "binding", "old": None,
         "new": "amy@shop.example (S001)", "added": [], "removed": []},
    ]
    listed = {i["id"]: i for i in api.get(f"{API}/imports", params={"status": "awaiting_approval"}).json()["imports"]}
    assert listed[waiting["id"]]["preview_sample"] == answer["preview_sample"]
