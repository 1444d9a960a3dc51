import pkgutil
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
