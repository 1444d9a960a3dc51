from contact_import import config, db, migrate, workspaces
from tests.helpers import EXAMPLES, table_counts

DATA_MODEL_TABLES = {"workspaces", "stores", "teammates", "teammate_stores", "attribute_definitions", "customers",
               "contacts", "tags", "contact_tags", "bindings", "imports"}
# feeds' files taken; the rows behind warnings; the fingerprints of rows the CDP holds
OPERATIONAL_TABLES = {"feed_files", "import_warnings", "contact_fingerprints"}
MIGRATIONS = sorted(p.name[:4] for p in (config.PACKAGE_DIR / "migrations" / "versions").glob("[0-9]*.py"))


def test_migrations_create_every_table_from_empty_and_rerun_cleanly(empty_db):
    assert migrate.upgrade(empty_db) == MIGRATIONS[-1]
    assert set(table_counts(empty_db)) == DATA_MODEL_TABLES | OPERATIONAL_TABLES
    assert migrate.upgrade(empty_db) == MIGRATIONS[-1]  # a second upgrade is a no-op
    assert all(count == 0 for count in table_counts(empty_db).values())


def _snapshot(url):
    with db.transaction(url) as conn, conn.cursor() as cur:
        out = {}
        for table, cols in {"workspaces": "id, slug, name, omo_enabled, default_region, updated_at",
                            "stores": "id, code, name", "teammates": "id, email, role, active",
                            "teammate_stores": "teammate_id, store_id",
                            "attribute_definitions": "id, key, label, type, options"}.items():
            cur.execute(f"SELECT {cols} FROM cdp.{table} ORDER BY 1, 2")
            out[table] = cur.fetchall()
        return out


def test_workspace_apply_twice_is_idempotent(cdp_url):
    spec = workspaces.load_file(EXAMPLES / "demo-workspace.yaml")
    with db.transaction(cdp_url) as conn:
        first = workspaces.apply(conn, spec)
    before = _snapshot(cdp_url)
    with db.transaction(cdp_url) as conn:
        second = workspaces.apply(conn, spec)
    assert first == second
    assert _snapshot(cdp_url) == before
    assert len(before["stores"]) == 2 and len(before["teammates"]) == 3 and len(before["teammate_stores"]) == 3
    assert [a[1] for a in before["attribute_definitions"]] == ["vip_level", "points"]


def test_workspace_apply_brings_the_workspace_to_the_file(cdp_url):
    spec = workspaces.load_file(EXAMPLES / "demo-workspace.yaml")
    with db.transaction(cdp_url) as conn:
        workspaces.apply(conn, spec)
    spec["stores"] = spec["stores"][:1]
    spec["teammates"] = [{"email": "AMY@shop.example", "name": "Amy", "role": "sales_manager", "stores": ["S001"]}]
    spec["omo"] = False
    with db.transaction(cdp_url) as conn:
        ws = workspaces.apply(conn, spec)
    after = _snapshot(cdp_url)
    assert not ws.omo_enabled
    assert [s[1] for s in after["stores"]] == ["S001"]
    teammates = {t[1].lower(): (t[2], t[3]) for t in after["teammates"]}
    assert teammates == {"amy@shop.example": ("sales_manager", True), "ben@shop.example": ("sales_manager", False),
                         "carol@shop.example": ("agent", False)}
