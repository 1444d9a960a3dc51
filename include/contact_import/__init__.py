"""Social contact import: the library behind the DAGs, the plugin and the CLI.

Nothing in this package imports Airflow, so each stage can be used and tested alone.
"""
