"""Settings read from the environment (docs/operations.md), in one place."""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def project_root() -> Path:
    """The checkout this package was installed from (editable install), else the cwd."""
    candidate = PACKAGE_DIR.parents[1]
    return candidate if (candidate / "pyproject.toml").exists() else Path.cwd()


def data_dir() -> Path:
    return Path(os.environ.get("CONTACT_IMPORT_DATA_DIR") or project_root() / ".data")


def storage_base() -> str:
    """Base path or URI for uploaded and intermediate files."""
    return os.environ.get("CONTACT_IMPORT_STORAGE") or str(data_dir() / "files")


def feeds_file() -> Path:
    """The partner feeds (README.md)."""
    return Path(os.environ.get("CONTACT_IMPORT_FEEDS") or project_root() / "include" / "feeds.yaml")


def expectations_dir() -> Path:
    return Path(os.environ.get("CONTACT_IMPORT_EXPECTATIONS") or project_root() / "expectations")


def chunk_rows() -> int:
    return int(os.environ.get("CONTACT_IMPORT_CHUNK_ROWS") or 50_000)


def validate_chunk_rows() -> int:
    """Rows validated at a time: bounds validation's memory (under 512 MiB at a million
    rows with 50,000), large enough that the GX suite's fixed cost per batch stays small."""
    return int(os.environ.get("CONTACT_IMPORT_VALIDATE_CHUNK_ROWS") or 50_000)


def max_upload_mb() -> int:
    """Largest upload in MiB, as sent (compressed or not): room for a plain CSV of about
    four million rows (the benchmark's million-row file is 132 MiB)."""
    return int(os.environ.get("CONTACT_IMPORT_MAX_UPLOAD_MB") or 512)


def max_active_imports() -> int:
    return int(os.environ.get("CONTACT_IMPORT_MAX_ACTIVE") or 1)


def max_report_errors() -> int:
    return int(os.environ.get("CONTACT_IMPORT_MAX_ERRORS") or 1000)


def unchanged_shortcut() -> bool:
    """Whether validation lets rows the CDP already holds skip the full path (docs/design.md#unchanged-rows).

    On by default; `CONTACT_IMPORT_UNCHANGED_SHORTCUT=0` sends every row the full path."""
    return os.environ.get("CONTACT_IMPORT_UNCHANGED_SHORTCUT", "1") not in ("0", "false", "False", "no")


def max_unpacked_mb() -> int:
    """Largest file a compressed upload may unpack to, in MiB (against zip bombs). By
    default twice the upload limit: compressing is how a file over the upload limit gets
    in, within a bound the workers' disks and the DAG's memory can take."""
    return int(os.environ.get("CONTACT_IMPORT_MAX_UNPACKED_MB") or 2 * max_upload_mb())


def heartbeat_seconds() -> float:
    """How old a running import's heartbeat may get before the import counts as interrupted
    once its runner is gone too (docs/design.md#interrupted-imports). Its runner beats four
    times as often."""
    return float(os.environ.get("CONTACT_IMPORT_HEARTBEAT_SECONDS") or 60)


def airflow_api_timeout() -> float:
    """Seconds the upload API gives one call of Airflow's REST API that acts (a trigger, a
    cancel), its repeats included; a read that only adds a hint gets a third of it. On a
    busy API server (one worker, serving this API too) a call may never be answered: the
    answer then degrades (docs/operations.md#faults) instead of waiting."""
    return float(os.environ.get("CONTACT_IMPORT_AIRFLOW_TIMEOUT") or 10)
