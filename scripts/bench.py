"""`make bench` (docs/benchmark.md): rows/s and peak memory per stage, beside the floors.

Generates a LINE file of BENCH_ROWS rows (default 1,000,000; 5% of emails and phones
repeat, tags, 30% bound rows, three custom attributes), imports it into a fresh database
stage by stage (each stage is the DAG task's own library call, run in a child process
so its peak RSS is its own), imports it again (all unchanged), then a copy with 5% of
the rows changed (names, tags, phones, bindings). Beside them, measured in the same run:
the bare floor (COPY into a staging table plus one INSERT .. ON CONFLICT), the data
model's floor (the same rows written straight from SQL into customers, contacts and
contact_tags), and, unless BENCH_API=0, a 100-row file through the upload API on
airflow standalone (upload -> completed, median of 5).
"""
from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import psycopg2
from psycopg2.extensions import make_dsn

from contact_import import config, context, db, imports, intake, migrate, workspaces

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["detect_encoding", "map_columns", "validate", "upsert_contacts", "bind_teammates", "finalize"]
HEADER = ["LINE User ID", "Name", "Email", "Phone", "Gender", "Birthday", "Tags", "Binding Teammate",
          "Store Location Code", "VIP Level", "Points", "Member Since"]
WORKSPACE = {
    "workspace": "bench", "name": "Bench", "omo": True, "default_region": "TW",
    "stores": [{"code": f"S{i:03d}", "name": f"Store {i}"} for i in range(1, 21)],
    "teammates": [{"email": f"rep{i}@shop.example", "name": f"Rep {i}", "role": "sales_rep",
                   "stores": [f"S{i % 20 + 1:03d}"]} for i in range(40)],
    "attributes": [{"key": "vip_level", "label": "VIP Level", "type": "select", "options": ["Gold", "Silver", "Bronze"]},
                   {"key": "points", "label": "Points", "type": "number"},
                   {"key": "member_since", "label": "Member Since", "type": "date"}],
}
SURNAMES = "陳林黃張李王吳劉蔡楊許鄭謝郭洪曾邱廖賴周"
GIVEN = "志明美玲家豪淑芬俊傑雅婷冠宇怡君宗翰佳穎"
TAGS = ["VIP", "新客", "回購客", "台北", "台中", "高雄", "生日禮", "電子報"]


def generate(path: Path, rows: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(HEADER)
        for n in range(rows):
            # 5% of rows reuse an earlier row's email and phone: shared profiles
            k = rng.randrange(n) if n and rng.random() < 0.05 else n
            rep = rng.randrange(40) if rng.random() < 0.3 else None
            writer.writerow([
                "U" + f"{n:032x}",
                rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN),
                f"user{k}@example.com",
                f"8869{k % 100_000_000:08d}",
                rng.choice(["male", "female", "other", ""]),
                f"{rng.randint(1950, 2005)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                ",".join(rng.sample(TAGS, rng.randint(0, 3))),
                f"rep{rep}@shop.example" if rep is not None else "",
                f"S{rep % 20 + 1:03d}" if rep is not None else "",
                rng.choice(["Gold", "Silver", "Bronze", ""]),
                str(rng.randint(0, 10_000)),
                f"20{rng.randint(10, 24)}-{rng.randint(1, 12):02d}-01",
            ])


def change_five_percent(source: Path, target: Path, seed: int = 11) -> int:
    """A copy of `source` in which every 20th row changed its name, tags, phone and binding
    (what a partner's daily snapshot looks like the next day); returns the rows changed."""
    rng = random.Random(seed)
    changed = 0
    with source.open(encoding="utf-8", newline="") as src, target.open("w", encoding="utf-8", newline="") as out:
        reader, writer = csv.reader(src), csv.writer(out)
        writer.writerow(next(reader))
        for n, row in enumerate(reader):
            if n % 20 == 7:
                rep = rng.randrange(40)
                row[1] = row[1] + "改"
                row[3] = f"8867{n % 100_000_000:08d}"  # a phone no other row has
                row[6] = ",".join(rng.sample(TAGS, rng.randint(1, 3)))
                row[7], row[8] = f"rep{rep}@shop.example", f"S{rep % 20 + 1:03d}"
                changed += 1
            writer.writerow(row)
    return changed


def run_stage(stage: str, url: str, import_id: str) -> tuple[float, int]:
    """One stage in a child process: (seconds, peak RSS in MiB)."""
    code = (f"from contact_import import context, tasks;"
            f" tasks.{stage}(context.for_command_line({url!r}), {import_id!r})")
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", code])
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.monotonic() - started
    if status != 0:
        raise SystemExit(f"stage {stage} failed (status {status})")
    return elapsed, usage.ru_maxrss // 1024


def import_file(url: str, path: Path, label: str, rows: int) -> dict:
    import_id = intake.create_import(context.for_command_line(url), workspace="bench", channel="line", tag_mode="append", file=str(path),
                                     source="cli")
    print(f"\n{label}: import {import_id}")
    print(f"  {'stage':<17}{'seconds':>9}{'rows/s':>11}{'peak MiB':>10}")
    total, peak = 0.0, 0
    for stage in STAGES:
        seconds, rss = run_stage(stage, url, import_id)
        total += seconds
        peak = max(peak, rss)
        print(f"  {stage:<17}{seconds:>9.1f}{rows / seconds:>11,.0f}{rss:>10,}")
    print(f"  {'total':<17}{total:>9.1f}{rows / total:>11,.0f}{peak:>10,}")
    with db.transaction(url) as conn:
        record = imports.get(conn, import_id)
    steps = {k: v for k, v in (record["timings"] or {}).items() if "." in k}
    print("  validate steps: " + ", ".join(f"{k.split('.', 1)[1]} {v:.1f}s" for k, v in steps.items()))
    print(f"  status {record['status']}; result {json.dumps(record['result'])}")
    return {"seconds": total, "peak_mib": peak}


RAW_COLUMNS = ", ".join(f"c{i} text" for i in range(len(HEADER)))  # the file's columns as c0, c1, ...


def stage_raw(cur, path: Path) -> None:
    """COPY the generated file as it is into the temporary table floor_stage."""
    cur.execute(f"CREATE TEMP TABLE floor_stage ({RAW_COLUMNS})")
    with path.open(encoding="utf-8") as f:
        cur.copy_expert("COPY floor_stage FROM STDIN WITH (FORMAT csv, HEADER true)", f)


def floor(url: str, path: Path) -> tuple[float, float]:
    """COPY + one INSERT .. ON CONFLICT of the same file: new rows, then all conflicting."""
    conn = psycopg2.connect(url)
    cur = conn.cursor()
    cur.execute(f"DROP TABLE IF EXISTS floor_target; CREATE TABLE floor_target ({RAW_COLUMNS}, PRIMARY KEY (c0));"
                " CREATE INDEX ON floor_target (c2); CREATE INDEX ON floor_target (c3)")
    conn.commit()
    times = []
    for _ in range(2):
        started = time.monotonic()
        stage_raw(cur, path)
        updates = ", ".join(f"c{i} = EXCLUDED.c{i}" for i in range(1, len(HEADER)))
        cur.execute(f"INSERT INTO floor_target SELECT * FROM floor_stage ON CONFLICT (c0) DO UPDATE SET {updates}")
        cur.execute("DROP TABLE floor_stage")
        conn.commit()
        times.append(time.monotonic() - started)
    cur.execute("DROP TABLE floor_target")
    conn.commit()
    conn.close()
    return times[0], times[1]


def schema_floor(url: str, path: Path) -> float:
    """The same file written straight from SQL into the CDP's own tables (docs/design.md#data-model):
    customers, contacts and contact_tags with their keys, indexes and foreign keys, in a
    workspace of its own. No validation, matching or Python: what any import of these
    rows must at least spend writing them on this server."""
    with db.transaction(url) as conn:
        ws = workspaces.apply(conn, {"workspace": "bench-floor", "name": "Bench floor", "omo": False})
    conn = psycopg2.connect(url)
    cur = conn.cursor()
    started = time.monotonic()
    stage_raw(cur, path)
    cur.execute("""
        INSERT INTO cdp.tags (workspace_id, name)
        SELECT DISTINCT %(ws)s, t FROM floor_stage, unnest(string_to_array(nullif(c6, ''), ',')) t;
        WITH new AS MATERIALIZED (
            SELECT s.*, nextval('cdp.customers_id_seq') AS customer_id, nextval('cdp.contacts_id_seq') AS contact_id
            FROM floor_stage s),
        customers AS (
            INSERT INTO cdp.customers (id, workspace_id, name, email, phone, gender, birthday)
            SELECT customer_id, %(ws)s, c1, c2, c3, nullif(c4, ''), c5::date FROM new),
        contacts AS (
            INSERT INTO cdp.contacts (id, workspace_id, channel, channel_user_id, customer_id)
            SELECT contact_id, %(ws)s, 'line', c0, customer_id FROM new)
        INSERT INTO cdp.contact_tags (contact_id, tag_id)
        SELECT n.contact_id, t.id FROM new n, unnest(string_to_array(nullif(n.c6, ''), ',')) e(name)
        JOIN cdp.tags t ON t.workspace_id = %(ws)s AND t.name = e.name""", {"ws": ws.id})
    conn.commit()
    seconds = time.monotonic() - started
    conn.close()
    return seconds


def main() -> None:
    rows = int(os.environ.get("BENCH_ROWS", 1_000_000))
    work = config.data_dir() / "bench"
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"line-{rows}.csv"
    if not path.exists():
        started = time.monotonic()
        generate(path, rows)
        print(f"generated {path} ({path.stat().st_size / 2**20:.0f} MiB) in {time.monotonic() - started:.0f}s")
    server = context.for_command_line().cdp_url
    admin = psycopg2.connect(server)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS cdp_bench WITH (FORCE)")
        cur.execute("CREATE DATABASE cdp_bench")
    url = make_dsn(server, dbname="cdp_bench")
    migrate.upgrade(url)
    with db.transaction(url) as conn:
        workspaces.apply(conn, WORKSPACE)
    changed_path = work / f"line-{rows}-changed.csv"
    changed_rows = change_five_percent(path, changed_path)
    print(f"rows {rows:,}; chunk rows {config.chunk_rows():,}; cores {os.cpu_count()}")
    first = import_file(url, path, "first import (all new)", rows)
    second = import_file(url, path, "re-import (all unchanged)", rows)
    third = import_file(url, changed_path, f"re-import with {changed_rows:,} rows changed (5%)", rows)
    insert_floor, update_floor = floor(url, path)
    written = schema_floor(url, path)
    print(f"\nfloors: COPY + INSERT .. ON CONFLICT {insert_floor:.1f}s (new rows), {update_floor:.1f}s (all"
          f" conflicting); the data model's floor (the same rows written straight from SQL into customers,"
          f" contacts and contact_tags) {written:.1f}s = {written / insert_floor:.1f}x the bare floor")
    print(f"  {'run':<28}{'seconds':>9}{'x bare floor':>14}{'x model floor':>15}{'peak MiB':>10}")
    for label, run, bare in (("first import", first, insert_floor), ("re-import, unchanged", second, update_floor),
                             ("re-import, 5% changed", third, update_floor)):
        model = f"{run['seconds'] / written:.1f}x" if run is first else ""
        print(f"  {label:<28}{run['seconds']:>9.1f}{run['seconds'] / bare:>13.1f}x{model:>15}{run['peak_mib']:>10,}")
    if os.environ.get("BENCH_API", "1") != "0":
        from bench_api import report

        report(url)
    with admin.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS cdp_bench WITH (FORCE)")
    admin.close()


if __name__ == "__main__":
    main()
