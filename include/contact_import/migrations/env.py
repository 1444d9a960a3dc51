"""Alembic environment: runs the cdp migrations on the connection handed in by migrate.py."""
from alembic import context
from sqlalchemy import text

connection = context.config.attributes["connection"]
connection.execute(text("CREATE SCHEMA IF NOT EXISTS cdp"))
context.configure(connection=connection, version_table_schema="cdp", transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()
