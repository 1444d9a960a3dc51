"""The soak test (docs/soak.md; not part of `make test`): many imports of mixed sizes and outcomes
through the upload API of `make airflow-celery`, then every import final, the CDP equal to what
the imports that completed wrote, and nothing leaked.

It starts scripts/airflow_local.py in celery mode on free ports with a work folder, a CDP database,
an Airflow metadata database, a Redis key prefix and a Celery queue of its own (never a developer's),
or attaches to a running Airflow (--url with --cdp-url and --storage). A seeded plan of files:

  valid           LINE files of 10 to 50,000 rows                   -> completed
  bad_header      no User ID column                                 -> 422 at upload, no import
  bad_rows        some invalid emails                               -> validation_failed
  approve/reject  require_approval, answered in Airflow's HITL step -> completed / cancelled
  cancel_waiting  cancelled as soon as uploaded                     -> cancelled
  cancel_running  20,000 rows, cancelled once `importing` has
                  committed a chunk                                 -> cancelled (or completed if it won)

Each file owns the User IDs FILE*100000+ROW, so the CDP's content is checkable contact by
contact: every row of a completed import is present with its fields; a row of an import cancelled
while importing may be present (the chunks it committed), with its fields; nothing else is.
Meanwhile scripts/loop_lag.py measures the API server's event loop.
Checks at the end: every import final, no import left running, the export as above, no temporary
table, advisory lock or idle-in-transaction session on the CDP database, no import folder without
its import, no `.part` file, nothing left in the scratch folder. Exit 1 if any check failed.

    .venv/bin/python scripts/soak.py --imports 200 --concurrency 4 --budget 3600 --seed 1
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg2
from psycopg2.extensions import make_dsn, parse_dsn

from contact_import import db, export, migrate, workspaces
from contact_import.endpoints import API_URL_PREFIX as API, IMPORT_DAG_ID
from contact_import.statuses import FINISHED

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "soak-password"
HEADER = ["LINE User ID", "Name", "Email", "Tags"]
WORKSPACES = ("soak-a", "soak-b")
PER_FILE = 100_000  # User IDs per file: FILE * PER_FILE + ROW
VALID_SIZES = ((10, 20), (100, 25), (1000, 25), (5000, 15), (20_000, 10), (50_000, 2))  # (rows, weight)
KINDS = (("valid", 50), ("bad_header", 8), ("bad_rows", 10), ("approve", 7), ("reject", 5),
         ("cancel_waiting", 10), ("cancel_running", 10))
EXPECTED = {"valid": {"completed"}, "bad_header": {"422"}, "bad_rows": {"validation_failed"},
            "approve": {"completed"}, "reject": {"cancelled"}, "cancel_waiting": {"cancelled"},
            "cancel_running": {"cancelled", "completed"}}
HUMAN_PAUSE = 5  # seconds before answering the approval step (tests/live/airflow_server.py says why)
DAG = f"/api/v2/dags/{IMPORT_DAG_ID}"
RUN = f"{DAG}/dagRuns"


def user_id(file: int, row: int) -> str:
    return "U" + f"{file * PER_FILE + row:032x}"


def row(file: int, n: int) -> tuple[str, str, str, list[str]]:
    """The file's row n: User ID, name, email, tags (as the export lists them)."""
    return user_id(file, n), f"Soak {file} {n}", f"s{file}.{n}@soak.example", [[], ["VIP"], ["VIP", "soak"]][n % 3]


@dataclass
class Item:
    n: int
    kind: str
    rows: int
    workspace: str
    result: dict = field(default_factory=dict)

    def content(self) -> bytes:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(HEADER[1:] if self.kind == "bad_header" else HEADER)
        for n in range(self.rows):
            uid, name, email, tags = row(self.n, n)
            if self.kind == "bad_rows" and n % 7 == 3:
                email = "not-an-email"
            writer.writerow(([] if self.kind == "bad_header" else [uid]) + [name, email, ",".join(tags)])
        return out.getvalue().encode()


def plan(count: int, seed: int) -> list[Item]:
    rng = random.Random(seed)
    total = sum(w for _, w in KINDS)
    kinds = [k for k, w in KINDS for _ in range(max(1, round(count * w / total)))]
    kinds = (kinds + ["valid"] * count)[:count]
    rng.shuffle(kinds)
    items = []
    for n, kind in enumerate(kinds):
        if kind == "cancel_running":
            rows = 20_000
        elif kind in ("approve", "reject", "bad_rows", "bad_header"):
            rows = rng.choice((10, 100, 1000))
        else:
            rows = rng.choices([s for s, _ in VALID_SIZES], [w for _, w in VALID_SIZES])[0]
        items.append(Item(n, kind, rows, WORKSPACES[n % len(WORKSPACES)]))
    return items


class Soak:
    def __init__(self, args, base: str, token: str, cdp_url: str, storage: Path, scratch: Path | None):
        self.args, self.base, self.cdp_url, self.storage, self.scratch = args, base, cdp_url, storage, scratch
        self.headers = {"Authorization": f"Bearer {token}"}
        self.token = token
        self.deadline = time.monotonic() + args.budget
        self.uploaded: list[str] = []
        self.lag: dict = {}
        self.local = threading.local()

    @property
    def api(self) -> httpx.Client:
        if not hasattr(self.local, "client"):
            self.local.client = httpx.Client(base_url=self.base, headers=self.headers, timeout=120)
        return self.local.client

    def drive(self, item: Item) -> None:
        """Upload the file, then act as its kind says until its import is final (or the budget ends)."""
        r = item.result
        started = time.monotonic()
        answer = self.api.post(f"{API}/imports", data={
            "workspace": item.workspace, "channel": "line", "tag_mode": "append",
            "require_approval": "true" if item.kind in ("approve", "reject") else "false"},
            files={"file": (f"soak-{item.n}.csv", item.content(), "text/csv")})
        r["upload_s"] = time.monotonic() - started
        if answer.status_code != 202:
            r.update(status=str(answer.status_code), seconds=time.monotonic() - started,
                     detail=answer.text[:200] if answer.status_code != 422 else None)
            return
        record = answer.json()
        r["id"] = record["id"]
        self.uploaded.append(record["id"])
        answered: set[int] = set()
        parked_at: dict[int, float] = {}
        while True:
            if time.monotonic() > self.deadline:
                r.update(status=f"unfinished:{record['status']}", seconds=time.monotonic() - started)
                return
            status = record["status"]
            if status in FINISHED:
                r.update(status=status, seconds=time.monotonic() - started, processed=record.get("processed_rows"),
                         message=(record.get("message") or {}).get("text"))
                return
            # while running: once a chunk is committed, so that the import keeps some rows
            if "cancel" in item.kind and "cancelled_in" not in r and (
                    item.kind == "cancel_waiting" or (status == "importing" and record.get("processed_rows"))):
                r["cancelled_in"] = status
                r["cancel_http"] = self.api.post(f"{API}/imports/{r['id']}/cancel").status_code
            if item.kind in ("approve", "reject") and status == "awaiting_approval":
                self.approval(item, record["dag_run_id"], answered, parked_at)
            time.sleep(0.3 if item.kind == "cancel_running" else 1.0)
            got = self.api.get(f"{API}/imports/{r['id']}")
            if got.status_code == 200:
                record = got.json()

    def approval(self, item: Item, run_id: str, answered: set[int], parked_at: dict[int, float]) -> None:
        """Answer the approval step once per try that waits for input, a person's pause after it parks."""
        step = self.api.get(f"{RUN}/{run_id}/taskInstances/approve").json()
        tried = step.get("try_number")
        if step.get("state") != "awaiting_input" or tried in answered:
            return
        if time.monotonic() - parked_at.setdefault(tried, time.monotonic()) < HUMAN_PAUSE:
            return
        choice = "Approve" if item.kind == "approve" else "Reject"
        done = self.api.patch(f"{RUN}/{run_id}/taskInstances/approve/-1/hitlDetails",
                              json={"chosen_options": [choice]})
        answered.add(tried)
        item.result.setdefault("hitl", []).append(done.status_code)

    def loop_lag(self) -> None:
        """scripts/loop_lag.py against the API server once some imports are under way."""
        while len(self.uploaded) < min(8, self.args.imports // 4) and time.monotonic() < self.deadline:
            time.sleep(1)
        # the first read of the OpenAPI document builds it: not the lag being measured
        self.api.get("/contact-imports/openapi.json")
        cmd = [sys.executable, str(ROOT / "scripts" / "loop_lag.py"), self.base, "--token", self.token,
               "--seconds", str(self.args.lag_seconds), "--concurrency", str(self.args.lag_concurrency)]
        for import_id in self.uploaded[:8]:
            cmd += ["--import-id", import_id]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=self.args.lag_seconds + 300)
        try:
            self.lag = {**json.loads(done.stdout), "exit": done.returncode}
        except ValueError:
            self.lag = {"exit": done.returncode, "error": (done.stderr or done.stdout)[-500:]}
        self.lag["during_uploads"] = len(self.uploaded)

    def run(self, items: list[Item]) -> None:
        lag = threading.Thread(target=self.loop_lag, daemon=True)
        lag.start()

        def one(item: Item) -> None:
            try:
                self.drive(item)
            except Exception as exc:  # noqa: BLE001 - the summary lists it as a failure
                item.result.update(status=f"error:{type(exc).__name__}", detail=str(exc)[:300])
            print(f"  {item.n:>4} {item.kind:<15}{item.rows:>7} rows  {item.result.get('status')}"
                  f"  {item.result.get('seconds', 0):.1f}s", flush=True)

        with ThreadPoolExecutor(self.args.concurrency) as pool:
            list(pool.map(one, items))
        lag.join(self.args.lag_seconds + 320)

    def quiet(self, timeout: float = 180) -> int:
        """Wait until Airflow has no import run queued or running; returns how many are left."""
        deadline = time.monotonic() + timeout
        while True:
            left = self.api.get(RUN, params={"state": ["queued", "running"], "limit": 1}).json()["total_entries"]
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(2)

    def checks(self, items: list[Item]) -> list[str]:
        failures = []
        for item in items:
            r = item.result
            if r.get("status") not in EXPECTED[item.kind]:
                failures.append(f"file {item.n} ({item.kind}, {item.rows} rows): {r.get('status')}"
                                f" {r.get('message') or r.get('detail') or ''}".strip())
        left = self.quiet()
        if left:
            failures.append(f"{left} DAG runs still queued or running after every import ended")
        time.sleep(5)  # the last task processes exit
        with psycopg2.connect(self.cdp_url) as conn, conn.cursor() as cur:
            cur.execute("SELECT status, count(*) FROM cdp.imports WHERE status <> ALL(%s) GROUP BY 1",
                        (list(FINISHED),))
            failures += [f"{n} imports still {s}" for s, n in cur.fetchall()]
            cur.execute("SELECT id::text FROM cdp.imports")
            ids = {i for (i,) in cur.fetchall()}
            accepted = {item.result["id"] for item in items if item.result.get("id")}
            if accepted - ids or (not self.args.url and ids - accepted):
                failures.append(f"imports recorded {len(ids)}, uploads accepted {len(accepted)}")
            cur.execute("SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n"
                        " ON n.oid = c.relnamespace WHERE n.nspname LIKE 'pg_temp%%' AND c.relkind = 'r'")
            if temp := [t for (t,) in cur.fetchall()]:
                failures.append(f"temporary tables left: {temp[:10]}")
            cur.execute("SELECT l.pid, l.objid FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
                        " WHERE l.locktype = 'advisory' AND d.datname = current_database()")
            if locks := cur.fetchall():
                failures.append(f"advisory locks held: {locks}")
            cur.execute("SELECT pid, application_name, state, now() - state_change FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                        " AND state LIKE 'idle in transaction%%'")
            if idle := cur.fetchall():
                failures.append(f"sessions idle in a transaction: {idle}")
            failures += self.export_check(conn, items)
        conn.close()
        folders = self.storage / "imports"
        stray = [p.name for p in folders.iterdir() if p.name not in ids] if folders.is_dir() else []
        if stray:
            failures.append(f"{len(stray)} import folders without an import: {stray[:5]}")
        if parts := [str(p) for p in self.storage.rglob("*.part")]:
            failures.append(f".part files left: {parts[:5]}")
        if self.scratch and self.scratch.is_dir() and (left_files := [str(p) for p in self.scratch.rglob("*")]):
            failures.append(f"scratch files left: {left_files[:5]}")
        return failures

    def export_check(self, conn, items: list[Item]) -> list[str]:
        """The rule of the module docstring, contact by contact, from `contact-import export`'s query."""
        failures, present = [], Counter()
        by_n = {item.n: item for item in items}
        for slug in WORKSPACES:
            ws = workspaces.get(conn, slug)
            for contact in export.contacts(conn, ws.id):
                n, k = divmod(int(contact["user_id"][1:], 16), PER_FILE)
                item = by_n.get(n)
                r = item.result if item else {}
                allowed = r.get("status") == "completed" or (
                    r.get("status") == "cancelled" and r.get("cancelled_in") == "importing")
                want = row(n, k) if item and k < item.rows else None
                got = (contact["user_id"], contact["name"], contact["email"], sorted(contact["tags"]))
                if not allowed or item.workspace != slug or got != want:
                    if len(failures) < 10:
                        failures.append(f"contact {contact['user_id']} in {slug} not expected: {got}, file"
                                        f" {n} {item and item.kind} {r.get('status')}, its row {want}")
                    else:
                        failures[-1] = "... and more unexpected contacts"
                present[n] += 1
        for item in items:
            r = item.result
            r["present"] = present[item.n]
            if r.get("status") == "completed" and present[item.n] != item.rows:
                failures.append(f"file {item.n} completed with {item.rows} rows, {present[item.n]} in the CDP")
            if r.get("status") == "cancelled" and present[item.n] != (r.get("processed") or 0):
                failures.append(f"file {item.n} cancelled in {r.get('cancelled_in')} with processed_rows"
                                f" {r.get('processed')}, {present[item.n]} in the CDP")
        return failures


def summary(items: list[Item], soak: Soak, failures: list[str], wall: float) -> str:
    out = [f"imports {len(items)}, wall {wall:.0f}s"]
    out.append("by kind -> outcome: " + ", ".join(
        f"{k}->{s} {n}" for (k, s), n in sorted(Counter((i.kind, i.result.get("status")) for i in items).items())))
    for status in sorted({i.result.get("status") for i in items}, key=str):
        secs = sorted(i.result["seconds"] for i in items if i.result.get("status") == status and "seconds" in i.result)
        if secs:
            out.append(f"  {status}: {len(secs)}, upload->final p50 {statistics.median(secs):.1f}s,"
                       f" p95 {secs[min(len(secs) - 1, int(len(secs) * 0.95))]:.1f}s, max {secs[-1]:.1f}s")
    uploads = sorted(i.result["upload_s"] for i in items if "upload_s" in i.result)
    if uploads:
        out.append(f"upload answer p50 {statistics.median(uploads):.2f}s, p95"
                   f" {uploads[min(len(uploads) - 1, int(len(uploads) * 0.95))]:.2f}s, max {uploads[-1]:.2f}s")
    running = [i for i in items if i.result.get("cancelled_in") == "importing"]
    if running:
        out.append("cancelled while importing (rows present / processed_rows / file rows): " + ", ".join(
            f"{i.result.get('present')}/{i.result.get('processed')}/{i.rows}" for i in running))
    rows = sum(i.rows for i in items if i.result.get("status") == "completed")
    present = sum(i.result.get("present", 0) for i in items)
    out.append(f"rows of completed imports {rows:,}; contacts present {present:,}")
    out.append("loop lag: " + json.dumps(soak.lag))
    out.append("checks: " + ("all passed" if not failures else f"{len(failures)} FAILED"))
    out += [f"  FAIL {f}" for f in failures]
    return "\n".join(out)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fresh_database(server: str, name: str) -> str:
    admin = psycopg2.connect(server)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    return make_dsn(server, dbname=name)


def start_airflow(args, work: Path, cdp_url: str, prefix: str, queue: str) -> tuple[subprocess.Popen, str]:
    dsn = parse_dsn(args.pg)
    meta_name = f"{args.name}_airflow"
    fresh_database(args.pg, meta_name)
    hostport = "&".join(f"{k}={v}" for k, v in (("host", dsn.get("host")), ("port", dsn.get("port"))) if v)
    login = dsn.get("user", "postgres") + (f":{dsn['password']}" if dsn.get("password") else "")
    port = free_port()
    env = dict(os.environ, AIRFLOW_LOCAL_EXECUTOR="celery", AIRFLOW_HOME=str(work / "airflow"),
               CONTACT_IMPORT_DATA_DIR=str(work / "data"), CONTACT_IMPORT_STORAGE=str(work / "files"),
               CONTACT_IMPORT_SCRATCH=str(work / "scratch"), CDP_DATABASE_URL=cdp_url, AIRFLOW_PORT=str(port),
               AIRFLOW_ADMIN_PASSWORD=PASSWORD, PYTHONUNBUFFERED="1",
               AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
               AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(free_port()),
               AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"postgresql+psycopg2://{login}@/{meta_name}?{hostport}",
               AIRFLOW__CELERY__BROKER_URL=args.redis, AIRFLOW__CELERY__RESULT_BACKEND="",
               AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX=prefix,
               AIRFLOW__OPERATORS__DEFAULT_QUEUE=queue,
               CONTACT_IMPORT_MAX_ACTIVE=str(args.max_active), CONTACT_IMPORT_CHUNK_ROWS=str(args.chunk_rows))
    env.pop("AIRFLOW__API__HOST", None)
    log = work / "airflow_local.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "airflow_local.py")], env=env, cwd=str(ROOT),
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 420
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"airflow_local.py exited with {proc.returncode}; see {log}")
        try:
            token = httpx.post(f"{base}/auth/token", json={"username": "admin", "password": PASSWORD}, timeout=10)
            dag = httpx.get(f"{base}{DAG}", headers={"Authorization": f"Bearer {token.json()['access_token']}"},
                            timeout=10)
            worker_ready = any("celery-worker" in line and " ready." in line
                               for line in log.read_text(errors="replace").splitlines())
            if dag.status_code == 200 and not dag.json()["is_paused"] and worker_ready:
                return proc, base
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        time.sleep(3)
    raise SystemExit(f"Airflow not ready after 420s; see {log}")


def stop_airflow(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(120)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    env = os.environ.get
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--imports", type=int, default=int(env("SOAK_IMPORTS", 200)))
    p.add_argument("--concurrency", type=int, default=int(env("SOAK_CONCURRENCY", 4)), help="imports driven at once")
    p.add_argument("--budget", type=float, default=float(env("SOAK_BUDGET", 3600)), help="seconds for every import")
    p.add_argument("--seed", type=int, default=int(env("SOAK_SEED", 1)))
    p.add_argument("--max-active", type=int, default=int(env("SOAK_MAX_ACTIVE", 3)), help="CONTACT_IMPORT_MAX_ACTIVE")
    p.add_argument("--chunk-rows", type=int, default=int(env("SOAK_CHUNK_ROWS", 2000)),
                   help="CONTACT_IMPORT_CHUNK_ROWS")
    p.add_argument("--lag-seconds", type=float, default=60.0)
    p.add_argument("--lag-concurrency", type=int, default=8)
    p.add_argument("--pg", default=env("SOAK_PG_URL", "postgresql://postgres@localhost:5432/postgres"),
                   help="PostgreSQL server on which the soak makes its databases")
    p.add_argument("--redis", default=env("SOAK_REDIS_URL", "redis://127.0.0.1:6379/0"))
    p.add_argument("--name", default="contact_import_soak", help="prefix of the soak's databases")
    p.add_argument("--work", type=Path, default=Path(env("SOAK_WORK", "/tmp/contact-import-soak")))
    p.add_argument("--keep", action="store_true", help="leave the databases and the work folder")
    p.add_argument("--url", help="attach to this Airflow instead (with --user/--password, --cdp-url, --storage)")
    p.add_argument("--user", default="admin")
    p.add_argument("--password", default=env("AIRFLOW_PASSWORD"))
    p.add_argument("--cdp-url")
    p.add_argument("--storage", type=Path)
    args = p.parse_args(argv)

    args.work.mkdir(parents=True, exist_ok=True)
    items = plan(args.imports, args.seed)
    print(f"plan: {len(items)} files, seed {args.seed}: " + ", ".join(
        f"{k} {n}" for k, n in sorted(Counter(i.kind for i in items).items())) +
        f"; {sum(i.rows for i in items):,} rows", flush=True)
    proc, redis_keys = None, None
    if args.url:
        base, cdp_url, storage, scratch = args.url.rstrip("/"), args.cdp_url, args.storage, None
        password = args.password
    else:
        if any(args.work.iterdir()) and not (args.work / "airflow_local.log").exists():
            raise SystemExit(f"{args.work} is not empty and not a soak's work folder; name another with --work")
        shutil.rmtree(args.work)
        args.work.mkdir(parents=True)
        cdp_url = fresh_database(args.pg, f"{args.name}_cdp")
        storage, scratch, password = args.work / "files", args.work / "scratch", PASSWORD
        tag = uuid.uuid4().hex[:10]
        redis_keys = f"contact-import-soak-{tag}:"
    migrate.upgrade(cdp_url)
    with db.transaction(cdp_url) as conn:
        for slug in WORKSPACES:
            workspaces.apply(conn, {"workspace": slug, "name": slug, "omo": False, "default_region": "TW"})
    started = time.monotonic()
    try:
        if not args.url:
            print(f"starting Airflow on CeleryExecutor (work folder {args.work}) ...", flush=True)
            proc, base = start_airflow(args, args.work, cdp_url, redis_keys, f"soak_{tag}")
            print(f"Airflow ready at {base} after {time.monotonic() - started:.0f}s", flush=True)
        token = httpx.post(f"{base}/auth/token", json={"username": args.user, "password": password},
                           timeout=30).json()["access_token"]
        soak = Soak(args, base, token, cdp_url, storage, scratch)
        began = time.monotonic()
        soak.run(items)
        wall = time.monotonic() - began
        failures = soak.checks(items)
        if soak.lag.get("exit") != 0:
            failures.append(f"loop_lag.py: {soak.lag}")
        print(summary(items, soak, failures, wall), flush=True)
        (args.work / "result.json").write_text(json.dumps(
            {"lag": soak.lag, "failures": failures, "wall": wall,
             "items": [{"n": i.n, "kind": i.kind, "rows": i.rows, **i.result} for i in items]}, indent=1))
    finally:
        if proc is not None:
            stop_airflow(proc)
        if redis_keys:
            import redis

            client = redis.Redis.from_url(args.redis)
            for key in list(client.scan_iter(match=f"{redis_keys}*", count=1000)):
                client.delete(key)
            client.close()
        if not args.url and not args.keep:
            admin = psycopg2.connect(args.pg)
            admin.autocommit = True
            with admin.cursor() as cur:
                for suffix in ("cdp", "airflow"):
                    cur.execute(f'DROP DATABASE IF EXISTS "{args.name}_{suffix}" WITH (FORCE)')
            admin.close()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
