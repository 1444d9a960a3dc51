"""imports.heartbeat_at and imports.runner: when the import's runner last showed it is
alive (every progress and chunk write, and a beat thread in between), and who runs it
(`dag_run:<run id>`, or `local:<host>:<pid>:<process start time>` for the command line),
from which an import whose runner is gone is told interrupted (docs/design.md#interrupted-imports).

Imports recorded before: the heartbeat is their last progress or update; an unfinished
one's runner is its DAG run, or `local` (a local process no longer known) for the
command line's, so that one stuck since is shown interrupted and can be resumed or given up.

Revision ID: 0010
"""
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE cdp.imports ADD COLUMN heartbeat_at timestamptz NOT NULL DEFAULT now(),"
               " ADD COLUMN runner text")
    op.execute("UPDATE cdp.imports SET heartbeat_at = COALESCE(step_updated_at, updated_at, created_at)")
    op.execute("UPDATE cdp.imports SET runner = CASE WHEN source = 'cli' THEN 'local'"
               " ELSE 'dag_run:' || dag_run_id END"
               " WHERE status IN ('waiting', 'validating', 'importing')")


def downgrade() -> None:
    op.execute("ALTER TABLE cdp.imports DROP COLUMN heartbeat_at, DROP COLUMN runner")
