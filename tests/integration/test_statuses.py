"""The import status machine: every transition of statuses.TRANSITIONS works, every other
change is refused and leaves the import as it was."""
from __future__ import annotations

import itertools

import pytest

from contact_import import db, imports, statuses
from tests.helpers import EXAMPLES, run_stages

SAMPLE = EXAMPLES / "line-contacts.csv"


@pytest.fixture
def import_in(cdp_url, demo_workspace):
    """A fresh import put straight into a given status (set-up only: the SQL bypasses the machine)."""
    def make(status: str) -> str:
        with db.transaction(cdp_url) as conn:
            import_id = imports.create(conn, workspace_id=demo_workspace.id, channel="line", tag_mode="append",
                                       file_uri="/nowhere/upload.csv", file_name="upload.csv", source="cli")
            with conn.cursor() as cur:
                cur.execute("UPDATE cdp.imports SET status = %s WHERE id = %s", (status, import_id))
        return import_id
    return make


def status_of(url: str, import_id: str) -> dict:
    with db.transaction(url) as conn:
        return imports.get(conn, import_id)


def test_the_table_names_every_status_and_finished_ones_lead_nowhere():
    assert set(statuses.TRANSITIONS) == set(statuses.STATUSES)
    assert all(target in statuses.STATUSES for targets in statuses.TRANSITIONS.values() for target in targets)
    assert all(not statuses.TRANSITIONS[s] for s in statuses.FINISHED)
    assert statuses.WAITING not in set().union(*statuses.TRANSITIONS.values())  # nothing goes back to waiting


@pytest.mark.parametrize("current,wanted", list(itertools.product(statuses.STATUSES, repeat=2)))
def test_every_allowed_transition_works_and_every_other_raises(cdp_url, import_in, current, wanted):
    import_id = import_in(current)
    with db.transaction(cdp_url) as conn:
        if wanted in statuses.TRANSITIONS[current]:
            assert statuses.change(conn, import_id, wanted, message="walked") == current
        else:
            expected = statuses.AlreadyFinished if current in statuses.FINISHED else statuses.IllegalTransition
            with pytest.raises(expected, match=f"{current}"):
                statuses.change(conn, import_id, wanted, message="walked")
    record = status_of(cdp_url, import_id)
    if wanted in statuses.TRANSITIONS[current]:
        assert record["status"] == wanted and record["message"] == "walked"
        assert (record["finished_at"] is not None) == (wanted in statuses.FINISHED)
    else:
        assert record["status"] == current and record["message"] is None and record["finished_at"] is None


def test_the_status_changes_only_through_the_machine(cdp_url, import_in):
    import_id = import_in(statuses.WAITING)
    with db.transaction(cdp_url) as conn, pytest.raises(ValueError, match="statuses.change"):
        imports.update(conn, import_id, status=statuses.COMPLETED)
    with db.transaction(cdp_url) as conn, pytest.raises(ValueError, match="unknown status"):
        statuses.change(conn, import_id, "done")
    with db.transaction(cdp_url) as conn, pytest.raises(imports.ImportNotFound):
        statuses.change(conn, "00000000-0000-0000-0000-000000000000", statuses.CANCELLED)
    assert status_of(cdp_url, import_id)["status"] == statuses.WAITING


def test_end_reports_whether_it_ended_the_import(cdp_url, demo_workspace):
    done = run_stages(cdp_url, SAMPLE)
    with db.transaction(cdp_url) as conn:
        assert statuses.end(conn, done["id"], statuses.FAILED, "late") is False
    assert status_of(cdp_url, done["id"])["status"] == statuses.COMPLETED
