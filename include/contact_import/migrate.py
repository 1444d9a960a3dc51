"""`contact-import db upgrade`: Alembic migrations of the cdp schema."""
from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from . import config, db


def upgrade(url: str, revision: str = "head") -> str:
    """Migrate the cdp schema to `revision`; returns the revision now current."""
    # A creator accepts every DSN libpq does (URLs with ?host=/socket/dir, key=value strings).
    engine = create_engine("postgresql+psycopg2://", creator=lambda: db.psycopg2.connect(url), poolclass=NullPool)
    cfg = Config()
    cfg.set_main_option("script_location", str(config.PACKAGE_DIR / "migrations"))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)
        return connection.exec_driver_sql("SELECT version_num FROM cdp.alembic_version").scalar()
