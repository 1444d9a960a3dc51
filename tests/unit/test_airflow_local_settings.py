"""plugins/airflow_local_settings.py: the processes that fork Airflow's task processes
(the scheduler, a Celery worker) load the tasks' libraries once; the others load nothing."""
import subprocess
import sys
from pathlib import Path

import pytest

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"


def _loaded_after_settings(*argv: str) -> set[str]:
    code = ("import sys; sys.argv = sys.argv[1:]; sys.path.insert(0, %r); import airflow_local_settings;"
            " print(' '.join(m for m in ('pandas', 'great_expectations', 'contact_import.stages')"
            " if m in sys.modules))" % str(PLUGINS))
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize("argv", [("airflow", "scheduler"), ("airflow", "celery", "worker", "-q", "default")])
def test_processes_that_fork_tasks_load_the_task_libraries(argv):
    assert _loaded_after_settings(*argv) == {"pandas", "great_expectations", "contact_import.stages"}


@pytest.mark.parametrize("argv", [("airflow", "api-server"), ("airflow", "dag-processor"), ("airflow", "standalone"),
                                  ("airflow", "dags", "test", "contact_import"), ("airflow", "celery", "flower")])
def test_other_airflow_processes_load_nothing_more(argv):
    assert _loaded_after_settings(*argv) == set()


def test_the_plugin_loader_skips_it():
    assert "airflow_local_settings.py" in (PLUGINS / ".airflowignore").read_text().splitlines()
