import pkgutil

import pytest
import subprocess
import sys

import contact_import


def test_the_library_never_imports_airflow():
    """include/contact_import is usable and testable without Airflow (design card)."""
    modules = [m.name for m in pkgutil.walk_packages(contact_import.__path__, "contact_import.")
               if ".migrations" not in m.name]
    code = ("import sys\n" + "".join(f"import {m}\n" for m in modules) +
            "bad = sorted(n for n in sys.modules if n == 'airflow' or n.startswith('airflow.'))\n"
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "contact_import.cli" in modules and "contact_import.upsert" in modules


HEAVY = ("pandas", "scipy", "phonenumbers", "great_expectations", "numpy")


@pytest.mark.parametrize("module", ["contact_import.intake", "contact_import.tasks", "contact_import.feeds",
                                    "contact_import.imports", "contact_import.statuses"])
def test_the_api_server_feeds_and_light_tasks_import_nothing_heavy(module):
    """What the API server, the feeds DAG and the light tasks (detect_encoding, map_columns,
    the approval gate, finalize) import: no pandas, scipy, phonenumbers or Great Expectations."""
    code = (f"import sys, {module}\n"
            f"print(sorted(n for n in sys.modules if n.split('.')[0] in {HEAVY!r}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", proc.stdout[:500]


def test_the_dags_parse_without_heavy_imports():
    """A DAG file is parsed again and again by the dag processor: it imports the light modules only."""
    from tests.helpers import ROOT

    code = ("import sys; sys.path.insert(0, sys.argv[1]); import contact_import_dag, partner_feeds_dag\n"
            f"print(sorted(n for n in sys.modules if n.split('.')[0] in {HEAVY!r}))")
    proc = subprocess.run([sys.executable, "-c", code, str(ROOT / "dags")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    heavy = eval(proc.stdout.strip().splitlines()[-1])
    assert not {n for n in heavy if n.split(".")[0] in ("scipy", "phonenumbers", "great_expectations")}, heavy
