"""What the DAGs of this project hand the library: the CDP database from Airflow's
connection `cdp_default`, files through Airflow's object storage (credentials from
Airflow connections). No DAG is defined here."""
from __future__ import annotations

from airflow.sdk import BaseHook, ObjectStoragePath
from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException

from contact_import import context


def cdp_context() -> context.Context:
    """No connection fails the task with one line; a task never guesses another database."""
    try:
        connection = BaseHook.get_connection(context.CONNECTION_ID)
    except AirflowNotFoundException:
        raise AirflowFailException(context.no_database_message()) from None
    return context.from_connection(connection, ObjectStoragePath)
