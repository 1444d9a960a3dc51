from pathlib import Path
"""The preview plans the import without writing; its counts and warnings must be the import's.

Random files over small pools of User IDs, emails and phones make rows collide in every
way the data model allows (shared profiles across chunks, a customer's email moving to
another row's value, identity conflicts, several stored customers holding one email),
and tiny chunks put each collision across a chunk boundary.
"""
import random

import pytest

from contact_import import binding, config, db, import_folder, imports, intake, normalised, stages, statuses, tasks, upsert, workspaces
from contact_import.channels import get_channel
from tests.helpers import EXAMPLES, LINE_HEADER, ctx, issue_keys, line_id, run_stages, write_csv

EMAILS = [f"p{n}@example.com" for n in range(5)]
PHONES = [f"88691100000{n}" for n in range(5)]
TEAMMATES = [("amy@shop.example", "S001"), ("UNASSIGNED", "")]


def random_file(rng: random.Random, path, users: int, rows: int):
    lines = []
    for user in rng.sample(range(users), rows):
        maybe = lambda values: rng.choice(values) if rng.random() < 0.6 else ""  # noqa: E731
        teammate, store = rng.choice(TEAMMATES) if rng.random() < 0.4 else ("", "")
        lines.append(",".join([
            line_id(user), maybe(["Ann", "Ben", "Cat"]), maybe(EMAILS), maybe(PHONES), maybe(["male", "female"]),
            "", '"' + ",".join(rng.sample(["VIP", "新客", "台北"], rng.randint(0, 2))) + '"', teammate, store,
            maybe(["Gold", "Silver"]), maybe(["1", "2"])]))
    return write_csv(path, LINE_HEADER, lines)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("tag_mode", ["append", "overwrite"])
def test_the_preview_counts_and_warns_exactly_like_the_import(monkeypatch, cdp_url, tmp_path, seed, tag_mode):
    rng = random.Random(seed)
    with db.transaction(cdp_url) as conn:
        ws = workspaces.apply(conn, workspaces.load_file(EXAMPLES / "demo-workspace.yaml"))
    monkeypatch.setenv("CONTACT_IMPORT_CHUNK_ROWS", str(1 + seed % 3))
    base = run_stages(cdp_url, random_file(rng, tmp_path / "base.csv", users=10, rows=6), require_approval=True)
    assert base["status"] == statuses.COMPLETED, base
    assert base["preview"] == base["result"]

    path = random_file(rng, tmp_path / "next.csv", users=14, rows=9)
    import_id = intake.create_import(ctx(cdp_url), workspace="demo", channel="line", tag_mode=tag_mode,
                                     file=str(path), require_approval=True)
    for stage in (tasks.detect_encoding, tasks.map_columns, tasks.validate):
        stage(ctx(cdp_url), import_id)
    with db.transaction(cdp_url) as conn:
        record = imports.get(conn, import_id)
    work_dir = record["work_dir"]
    counts, warnings = stages.preview(cdp_url, ws, "line", tag_mode, Path(work_dir))
    assert counts == record["preview"]

    applied = []
    conn = db.connect(cdp_url)
    try:
        result = upsert.run(conn, ws, get_channel("line"), tag_mode, Path(work_dir) / import_folder.NORMALISED,
                            config.chunk_rows(), on_chunk=lambda n, chunk, plan: applied.extend(plan.warnings))
        for chunk in normalised.read(Path(work_dir) / import_folder.NORMALISED, 100):
            for key, value in binding.apply(conn, ws, get_channel("line"), chunk).items():
                result[key] = result.get(key, 0) + value
        conn.commit()
    finally:
        conn.close()
    assert result == counts
    assert issue_keys(applied) == issue_keys(warnings)
