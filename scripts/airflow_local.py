"""`make airflow`: Airflow on this machine with this checkout's DAGs and plugin (SPEC section 7).

Runs `airflow standalone` (API server and UI, scheduler with LocalExecutor, dag-processor,
triggerer; SQLite metadata) in the foreground, after making sure the CDP database is
migrated and the demo workspace applied. Ctrl-C (or SIGTERM) stops every Airflow process.

Settings (environment):
  AIRFLOW_PORT            port of the API server and UI (default 8080)
  AIRFLOW_ADMIN_PASSWORD  password of user `admin` (default: the one stored in the
                          passwords file, else a generated one; printed either way)
  AIRFLOW_HOME            Airflow's home (default $CONTACT_IMPORT_DATA_DIR/airflow)
  CDP_DATABASE_URL        the CDP database (default the embedded PostgreSQL under .data/pg)
  AIRFLOW__API__HOST      interface of the API server (default 127.0.0.1: this machine only;
                          0.0.0.0 to reach it from elsewhere, e.g. from outside a container)
Any other AIRFLOW__SECTION__KEY you set is passed on and wins over the defaults below,
except the DAGs/plugins folders, which are always this checkout's.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from contact_import import config, db, migrate, workspaces
from contact_import.cli import airflow_env

ROOT = config.project_root()
DEMO_WORKSPACE = ROOT / "examples" / "demo-workspace.yaml"
SAMPLE_FILE = ROOT / "examples" / "line-contacts.csv"
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
ADMIN = "admin"
STOP_GRACE_SECONDS = 30  # Airflow's own shutdown after SIGINT, before SIGTERM/SIGKILL of the rest


def say(message: str = "") -> None:
    print(f"airflow_local | {message}", flush=True)


def fail(message: str) -> int:
    print(f"airflow_local: {message}", file=sys.stderr, flush=True)
    return 2


def port_in_use(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host.strip("[]"), port))
        except OSError:
            return True
    return False


def prepare_cdp() -> str:
    """Resolve the CDP URL once (starting the embedded server if needed), migrate, apply the demo."""
    url = db.resolve_url()
    revision = migrate.upgrade(url)
    with db.transaction(url) as conn:
        ws = workspaces.apply(conn, workspaces.load_file(DEMO_WORKSPACE))
    say(f"CDP database at revision {revision}; workspace {ws.slug!r} applied from {DEMO_WORKSPACE.name}")
    return url


def admin_password(passwords_file: Path) -> str:
    """The admin password: AIRFLOW_ADMIN_PASSWORD, else the stored one, else a new one; stored in the file.

    SimpleAuthManager (3.3) reads the file named by [core] simple_auth_manager_passwords_file
    as JSON {"user": "password"} at every login, and only generates passwords for users
    missing from it.
    """
    stored: dict = {}
    if passwords_file.exists():
        try:
            stored = json.loads(passwords_file.read_text() or "{}")
        except json.JSONDecodeError:
            say(f"{passwords_file} is not JSON; rewriting it")
        if not isinstance(stored, dict):
            stored = {}
    password = os.environ.get("AIRFLOW_ADMIN_PASSWORD") or stored.get(ADMIN) or secrets.token_urlsafe(12)
    if stored.get(ADMIN) != password:
        stored[ADMIN] = password
        passwords_file.parent.mkdir(parents=True, exist_ok=True)
        passwords_file.touch(mode=0o600)
        passwords_file.write_text(json.dumps(stored) + "\n")
    return password


def jwt_secret(home: Path) -> str:
    """One signing key for the JWTs of every component, kept in AIRFLOW_HOME across restarts.

    Airflow's generated default is 16 bytes, below the 64 that HS512 wants (PyJWT warns at
    every request); any AIRFLOW__API_AUTH__JWT_SECRET you set wins.
    """
    path = home / "jwt_secret"
    if not path.exists() or not path.read_text().strip():
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(64) + "\n")
    return path.read_text().strip()


def api_host() -> str:
    return os.environ.get("AIRFLOW__API__HOST") or "127.0.0.1"


def local_address(host: str) -> str:
    """Where the other components reach the API server."""
    if host in ("0.0.0.0", "::", "[::]", "localhost", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def build_env(url: str, port: int) -> dict[str, str]:
    env = airflow_env(url)  # AIRFLOW_HOME, dags/plugins folders, no examples, CDP_DATABASE_URL
    home = Path(env["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    host = api_host()
    bindir = str(Path(sys.executable).parent)  # the venv's bin/: standalone starts `airflow ...` from PATH
    if env.get("PATH", "").split(os.pathsep)[0] != bindir:
        env["PATH"] = os.pathsep.join([bindir, env.get("PATH", "")])
    env["AIRFLOW__API__HOST"] = host
    env["AIRFLOW__API__PORT"] = str(port)
    defaults = {
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "simple_auth_manager_passwords.json.generated"),
        # Tasks report to the API server; Airflow's default assumes http://localhost:8080.
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://{local_address(host)}:{port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": "",  # filled below unless set
        # A local dev target: DAGs are ready to run as soon as they are parsed.
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        # LocalExecutor forks this many workers up front (32 by default, ~1 GB on its own).
        "AIRFLOW__CORE__PARALLELISM": "4",
    }
    for key, value in defaults.items():
        env[key] = os.environ.get(key) or value
    if not env["AIRFLOW__API_AUTH__JWT_SECRET"]:
        env["AIRFLOW__API_AUTH__JWT_SECRET"] = jwt_secret(home)
    return env


def banner(port: int, password: str, passwords_file: str, url: str) -> None:
    address = local_address(api_host())
    base = f"http://{'localhost' if address == '127.0.0.1' else address}:{port}"
    conf = json.dumps({"workspace": "demo", "channel": "line", "tag_mode": "append", "file": str(SAMPLE_FILE)},
                      ensure_ascii=False)
    for line in [
        "=" * 78,
        f"Airflow UI:    {base}",
        f"User:          {ADMIN}",
        f"Password:      {password}    (stored in {passwords_file})",
        f"CDP database:  {url}",
        "",
        f"Import a file: open {base}/dags/contact_import, press 'Trigger', fill in the form;",
        "  `file` takes an absolute path, e.g.",
        f"  {SAMPLE_FILE}",
        "From a shell:",
        f"  TOKEN=$(curl -s -X POST {base}/auth/token -H 'Content-Type: application/json' \\",
        f"          -d '{{\"username\":\"{ADMIN}\",\"password\":\"{password}\"}}' | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')",
        f"  curl -X POST {base}/api/v2/dags/contact_import/dagRuns -H \"Authorization: Bearer $TOKEN\" \\",
        f"       -H 'Content-Type: application/json' -d '{{\"logical_date\": null, \"conf\": {conf}}}'",
        "Stop with Ctrl-C.",
        "=" * 78,
    ]:
        say(line)


def announce_when_up(port: int, show, stopped: threading.Event) -> None:
    """Print the banner again once the API server answers (it scrolls away under the logs)."""
    while not stopped.is_set():
        try:
            with urllib.request.urlopen(f"http://{local_address(api_host())}:{port}/api/v2/version",
                                        timeout=2) as response:
                if response.status == 200:
                    say("the API server is up")
                    show()
                    return
        except (urllib.error.URLError, OSError):
            pass
        stopped.wait(2)


class Stop(Exception):
    pass


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_group(proc: subprocess.Popen) -> None:
    """SIGINT to standalone (it stops its components), then SIGTERM and SIGKILL to whatever is left."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            pass
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        if not group_alive(proc.pid):  # standalone leads its own process group
            break
        say(f"sending {sig.name} to the remaining Airflow processes")
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace
        while group_alive(proc.pid) and time.monotonic() < deadline:
            proc.poll()  # reap the leader if it has exited
            time.sleep(0.2)
    proc.poll()


def main() -> int:
    for name in ("CONTACT_IMPORT_DATA_DIR", "AIRFLOW_HOME"):  # every process must see the same folders
        if os.environ.get(name):
            os.environ[name] = str(Path(os.environ[name]).expanduser().resolve())
    try:
        port = int(os.environ.get("AIRFLOW_PORT") or os.environ.get("AIRFLOW__API__PORT") or 8080)
    except ValueError:
        return fail(f"AIRFLOW_PORT must be a number, not {os.environ.get('AIRFLOW_PORT')!r}")
    if port_in_use(api_host(), port):
        return fail(f"port {port} is in use; stop what runs there or set AIRFLOW_PORT to another port")
    try:
        url = prepare_cdp()
    except (workspaces.WorkspaceFileError, LookupError, ValueError, db.psycopg2.Error, SQLAlchemyError) as exc:
        return fail(f"cannot prepare the CDP database: {str(exc).strip().splitlines()[0]}")

    env = build_env(url, port)
    home = Path(env["AIRFLOW_HOME"])
    passwords_file = Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    password = admin_password(passwords_file)
    say(f"AIRFLOW_HOME={home}")
    say(f"DAGs from {env['AIRFLOW__CORE__DAGS_FOLDER']}, plugins from {env['AIRFLOW__CORE__PLUGINS_FOLDER']}")

    def show() -> None:
        banner(port, password, str(passwords_file), url)

    show()

    def on_signal(signum, frame):
        raise Stop(signum)

    proc: subprocess.Popen | None = None
    stopped = threading.Event()
    code = 0
    try:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, on_signal)
        # Its own process group: a terminal's Ctrl-C reaches only this script, which then stops
        # Airflow in order and sweeps the whole group, so no component is left behind.
        proc = subprocess.Popen([str(Path(sys.executable).parent / "airflow"), "standalone"],
                                env=env, cwd=str(ROOT), start_new_session=True)
        threading.Thread(target=announce_when_up, args=(port, show, stopped), daemon=True).start()
        code = proc.wait()
        say(f"airflow standalone exited with {code}")
    except Stop:
        say("stopping Airflow ...")
    finally:
        stopped.set()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        if proc is not None:
            stop_group(proc)
        say("stopped")
    return code if code >= 0 else 1


if __name__ == "__main__":
    sys.exit(main())
