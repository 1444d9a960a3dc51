"""A full disk while the UTF-8 copy of a file is written (docs/operations.md#faults). The
detect stage runs in a process that may write no file past 64 KiB (RLIMIT_FSIZE; with
SIGXFSZ ignored a write past it fails with EFBIG, as a full disk fails one with ENOSPC)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from contact_import import db, import_folder, imports, intake, statuses, tasks
from tests.helpers import LINE_HEADER, ctx, line_id, table_counts, write_csv

LIMIT = 64 * 1024  # bytes any file of the stage's process may reach
CHILD = """
import resource, signal, sys
from contact_import import context, tasks
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[3]), resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
tasks.run(tasks.detect_encoding, context.for_command_line(sys.argv[1]), sys.argv[2])
"""


def test_a_full_disk_fails_the_utf8_copy_clearly_keeps_no_part_of_it_and_imports_nothing(cdp_url, demo_workspace,
                                                                                        tmp_path):
    rows = [f"{line_id(n)},Person {n},p{n}@example.com,,,,,,,," for n in range(4000)]  # about 300 KiB
    path = write_csv(tmp_path / "contacts.csv", LINE_HEADER, rows)
    import_id = intake.create_import(ctx(cdp_url), workspace="demo", channel="line", tag_mode="append", file=str(path))
    before = table_counts(cdp_url)
    child = subprocess.run([sys.executable, "-c", CHILD, cdp_url, import_id, str(LIMIT)], capture_output=True,
                           text=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}, timeout=300)
    assert child.returncode == 1, child.stderr
    failure = child.stderr.strip().splitlines()[-1]
    assert failure.startswith("contact_import.storage.StorageFault: storage_full: No space is left where the"
                              f" import's files are written (writing {import_folder.UTF8}: File too large);"
                              " nothing was imported."), failure

    with db.transaction(cdp_url) as conn:
        record = imports.get(conn, import_id)
    folder = Path(record["work_dir"])
    assert sorted(p.name for p in folder.iterdir()) == ["upload.csv"], "the UTF-8 copy cut short is removed"
    assert record["status"] == statuses.VALIDATING and record["total_rows"] is None and record["errors"] == 0
    assert table_counts(cdp_url) == before

    # Airflow's retry, with room again
    assert tasks.run(tasks.detect_encoding, ctx(cdp_url), import_id)["rows"] == 4000
    assert (folder / import_folder.UTF8).stat().st_size > LIMIT
