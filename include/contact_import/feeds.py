"""Partner feeds (README.md): files dropped into an inbox become imports, each once.

A feed (include/feeds.yaml, or the file CONTACT_IMPORT_FEEDS names) has an inbox URI
with a file pattern (`file:///data/inbox/acme/*.csv`, `s3://bucket/acme/*.csv`). One scan
of a feed:
  1. settles the files whose imports ended: moved to `done/` or `failed/` beside the inbox;
  2. lists the inbox and keeps the files that are complete (`ready: stable`: size and
     modification stamp unchanged across two looks; `ready: marker`: `FILE.done` exists);
  3. takes each new one: claims its content hash in cdp.feed_files (a file whose content
     was taken before is not imported again), stores a copy and records an import;
  4. returns the contact_import runs to trigger, with run ids derived from the import, so
     triggering again after a crash starts nothing twice.
"""
from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import yaml
from croniter import croniter

from . import config, db, intake, statuses, storage, workspaces
from .channels import TAG_MODES, get_channel
from .context import Context
from .storage import Storage

READY_MODES = ("stable", "marker")
MARKER_SUFFIX = ".done"
DONE, FAILED = "done", "failed"
IMPORT_NAMESPACE = uuid.UUID("5d0c8a1e-2f4b-4c1e-9a57-0e0c6f7b3a21")


class FeedError(Exception):
    """A feed's settings or its inbox are wrong; the message names the feed."""


@dataclass(frozen=True)
class Feed:
    name: str
    workspace: str
    channel: str
    inbox: str
    tag_mode: str = "append"
    complete_local_phones: bool = False  # the import option (normalisation.completed)
    schedule: str = "@hourly"
    ready: str = "stable"
    settle_seconds: float = 10.0  # between the two looks of `ready: stable`
    mapping: dict | None = field(default=None, hash=False)

    def folder(self, st: Storage) -> storage.UPath:
        return st.path(self.inbox).parent

    @property
    def pattern(self) -> str:
        return self.inbox.rstrip("/").rsplit("/", 1)[-1]

    def due(self, at: datetime) -> bool:
        """Whether the feed's own schedule fires at `at` (the DAG runs at every feed's times)."""
        return croniter.match(self.schedule, at)


def feeds_file() -> Path:
    return Path(config.feeds_file())


def load(path: Path | None = None) -> list[Feed]:
    path = path or feeds_file()
    if not path.exists():
        return []
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise FeedError(f"{path}: not YAML: {exc}") from None
    feeds, names = [], set()
    for number, item in enumerate(document.get("feeds") or [], start=1):
        where = f"{path}: feed {item.get('name') or number}" if isinstance(item, dict) else f"{path}: feed {number}"
        if not isinstance(item, dict):
            raise FeedError(f"{where}: expected a mapping")
        unknown = set(item) - set(Feed.__dataclass_fields__)
        missing = {"name", "workspace", "channel", "inbox"} - set(item)
        if unknown or missing:
            raise FeedError(f"{where}: " + "; ".join(
                ([f"unknown keys {sorted(unknown)}"] if unknown else []) +
                ([f"missing {sorted(missing)}"] if missing else [])))
        feed = Feed(**{**item, "inbox": _expand(str(item["inbox"]))})
        try:
            get_channel(feed.channel)
        except ValueError as exc:
            raise FeedError(f"{where}: {exc}") from None
        if feed.tag_mode not in TAG_MODES:
            raise FeedError(f"{where}: tag_mode must be one of {', '.join(TAG_MODES)}")
        if not isinstance(feed.complete_local_phones, bool):
            raise FeedError(f"{where}: complete_local_phones must be true or false")
        if feed.ready not in READY_MODES:
            raise FeedError(f"{where}: ready must be one of {', '.join(READY_MODES)}")
        if not croniter.is_valid(feed.schedule):
            raise FeedError(f"{where}: schedule {feed.schedule!r} is not a cron expression")
        if "*" in feed.inbox.rstrip("/").rsplit("/", 1)[0]:
            raise FeedError(f"{where}: only the file name of the inbox may hold a pattern")
        if feed.name in names:
            raise FeedError(f"{where}: the name is used twice")
        names.add(feed.name)
        feeds.append(feed)
    return feeds


def _expand(inbox: str) -> str:
    """${CONTACT_IMPORT_DATA_DIR} (the project's data folder when unset) and other variables."""
    return os.path.expandvars(inbox.replace("${CONTACT_IMPORT_DATA_DIR}", str(config.data_dir())))


def get(name: str, path: Path | None = None) -> Feed:
    for feed in load(path):
        if feed.name == name:
            return feed
    raise FeedError(f"no feed {name!r} in {path or feeds_file()}")


# ---------------------------------------------------------------- the inbox
@dataclass(frozen=True)
class InboxFile:
    path: storage.UPath
    size: int
    modified: str


def list_inbox(st: Storage, feed: Feed) -> list[InboxFile]:
    folder = feed.folder(st)
    if storage.is_local(folder) and not storage.local_path(folder).is_dir():  # e.g. a share not mounted
        raise FeedError(f"feed {feed.name}: the inbox folder {folder} does not exist")
    try:
        folder.fs.invalidate_cache(folder.path)  # object stores' listings are cached: each look is a new one
        entries = sorted(folder.glob(feed.pattern), key=str)
        found = []
        for entry in entries:
            try:
                info = entry.fs.info(entry.path)
            except FileNotFoundError:  # taken away since the listing
                continue
            if info.get("type") != "file" or entry.name.endswith(MARKER_SUFFIX):
                continue
            stamp = info.get("mtime") or info.get("LastModified") or info.get("ETag") or info.get("created")
            found.append(InboxFile(entry, int(info.get("size") or 0), str(stamp)))
        return found
    except Exception as exc:  # any fsspec backend: its own errors for a missing bucket, a refused login...
        raise FeedError(f"feed {feed.name}: the inbox {feed.inbox} cannot be read: "
                        f"{type(exc).__name__}: {exc}") from exc


def ready_files(st: Storage, feed: Feed, sleep: Callable[[float], None] = time.sleep) -> list[InboxFile]:
    """The inbox files complete enough to take."""
    first = list_inbox(st, feed)
    if feed.ready == "marker":
        return [f for f in first if (f.path.parent / (f.path.name + MARKER_SUFFIX)).exists()]
    if not first:
        return []
    sleep(feed.settle_seconds)
    second = {str(f.path): f for f in list_inbox(st, feed)}
    return [f for f in first if f.size > 0 and second.get(str(f.path)) == f]


# ---------------------------------------------------------------- taking and settling files
def _workspace_id(conn, feed: Feed) -> int:
    try:
        return workspaces.get(conn, feed.workspace).id
    except LookupError:
        raise FeedError(f"feed {feed.name}: no workspace {feed.workspace!r}") from None


def import_id_for(ledger_id: int) -> str:
    return str(uuid.uuid5(IMPORT_NAMESPACE, str(ledger_id)))


def run_id_for(feed: Feed, import_id: str) -> str:
    return f"feed__{feed.name}__{import_id}"


def take(ctx: Context, feed: Feed, found: InboxFile) -> str | None:
    """Claim a ready file and record its import; the import id, or None when its content
    was taken before (a file already running stays; a repeat of a settled one is moved
    to done/ unimported)."""
    with db.transaction(ctx.cdp_url) as conn, conn.cursor() as cur:
        workspace_id = _workspace_id(conn, feed)
        cur.execute("SELECT 1 FROM cdp.feed_files WHERE workspace_id = %s AND feed = %s AND uri = %s"
                    " AND size = %s AND modified = %s AND settled_at IS NULL",
                    (workspace_id, feed.name, str(found.path), found.size, found.modified))
        if cur.fetchone():  # seen unchanged in an earlier scan: no need to hash it again
            return None
    digest = storage.sha256(found.path)
    with db.transaction(ctx.cdp_url) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO cdp.feed_files (workspace_id, feed, sha256, uri, size, modified)"
                    " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (workspace_id, feed, sha256) DO NOTHING"
                    " RETURNING id", (workspace_id, feed.name, digest, str(found.path), found.size, found.modified))
        row = cur.fetchone()
        if row is None:
            cur.execute("SELECT settled_at IS NOT NULL FROM cdp.feed_files"
                        " WHERE workspace_id = %s AND feed = %s AND sha256 = %s", (workspace_id, feed.name, digest))
            settled = cur.fetchone()[0]
    if row is None:
        if settled:
            storage.move(found.path, feed.folder(ctx.storage) / DONE)
        return None
    return _record_import(ctx, feed, row[0], found.path)


def _record_import(ctx: Context, feed: Feed, ledger_id: int, source: storage.UPath) -> str:
    import_id = import_id_for(ledger_id)
    if not intake.import_exists(ctx, import_id):
        intake.create_import(ctx, workspace=feed.workspace, channel=feed.channel, tag_mode=feed.tag_mode,
                               file=str(source), mapping=feed.mapping,
                               complete_local_phones=feed.complete_local_phones, source="feed", import_id=import_id)
    with db.transaction(ctx.cdp_url) as conn, conn.cursor() as cur:
        cur.execute("UPDATE cdp.feed_files SET import_id = %s WHERE id = %s", (import_id, ledger_id))
    return import_id


def settle(ctx: Context, feed: Feed, import_id: str | None = None) -> list[dict[str, Any]]:
    """Move the files whose imports ended (or only `import_id`'s) to done/ (completed) or
    failed/ (anything else)."""
    moved = []
    with db.transaction(ctx.cdp_url) as conn, conn.cursor() as cur:
        workspace_id = _workspace_id(conn, feed)
        cur.execute("SELECT f.id, f.uri, f.import_id, i.status FROM cdp.feed_files f"
                    " LEFT JOIN cdp.imports i ON i.id = f.import_id"
                    " WHERE f.workspace_id = %s AND f.feed = %s AND f.settled_at IS NULL"
                    " AND (f.import_id IS NULL OR i.status = ANY(%s))"
                    " AND (%s::uuid IS NULL OR f.import_id = %s::uuid) ORDER BY f.id",
                    (workspace_id, feed.name, list(statuses.FINISHED), import_id, import_id))
        rows = cur.fetchall()
    for ledger_id, uri, taken_import, status in rows:
        if taken_import is None:  # claimed, then the scan stopped before recording the import
            _record_import(ctx, feed, ledger_id, ctx.storage.path(uri))
            continue
        outcome = DONE if status == statuses.COMPLETED else FAILED
        source = ctx.storage.path(uri)
        target = storage.move(source, feed.folder(ctx.storage) / outcome) if source.exists() else None
        with db.transaction(ctx.cdp_url) as conn, conn.cursor() as cur:
            cur.execute("UPDATE cdp.feed_files SET outcome = %s, moved_to = %s, settled_at = now() WHERE id = %s",
                        (outcome, str(target) if target else None, ledger_id))
        moved.append({"file": uri, "import_id": str(taken_import), "status": status, "moved_to": str(target)})
    return moved


def settle_import(ctx: Context, import_id: str) -> list[dict[str, Any]]:
    """When an import from a feed ends: move its file now rather than at the feed's next scan."""
    with db.transaction(ctx.cdp_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT feed FROM cdp.feed_files WHERE import_id = %s AND settled_at IS NULL", (import_id,))
        row = cur.fetchone()
    return settle(ctx, get(row[0]), import_id) if row else []


def runs_to_trigger(ctx: Context, feed: Feed) -> list[dict[str, Any]]:
    """TriggerDagRunOperator arguments for every import of the feed not started by Airflow yet."""
    with db.transaction(ctx.cdp_url) as conn, conn.cursor() as cur:
        workspace_id = _workspace_id(conn, feed)
        cur.execute("SELECT i.id FROM cdp.feed_files f JOIN cdp.imports i ON i.id = f.import_id"
                    " WHERE f.workspace_id = %s AND f.feed = %s AND f.settled_at IS NULL"
                    " AND i.status = %s AND i.dag_run_id IS NULL ORDER BY f.id",
                    (workspace_id, feed.name, statuses.WAITING))
        import_ids = [str(row[0]) for row in cur.fetchall()]
    return [{"trigger_run_id": run_id_for(feed, import_id),
             "conf": {"workspace": feed.workspace, "channel": feed.channel, "tag_mode": feed.tag_mode,
                      "file": "", "mapping": feed.mapping or {}, "require_approval": False,
                      "complete_local_phones": feed.complete_local_phones, "import_id": import_id}}
            for import_id in import_ids]


def scan(ctx: Context, feed: Feed, sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """One scan of a feed (the steps in this module's docstring)."""
    settled = settle(ctx, feed)
    taken = [import_id for found in ready_files(ctx.storage, feed, sleep) if (import_id := take(ctx, feed, found))]
    return {"feed": feed.name, "settled": settled, "taken": taken, "trigger": runs_to_trigger(ctx, feed)}
