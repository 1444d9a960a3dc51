"""`make airflow`: Airflow on this machine with this checkout's DAGs and plugin (docs/operations.md).

Runs `airflow standalone` (API server and UI, scheduler with LocalExecutor, dag-processor,
triggerer; SQLite metadata) in the foreground, after making sure the CDP database is
migrated and the demo workspace applied, and that this project's DAGs are not recorded
paused in Airflow's metadata. Ctrl-C (or SIGTERM) stops every Airflow process.

With AIRFLOW_LOCAL_EXECUTOR=celery (`make airflow-celery`) it runs the distributed set-up
of docs/operations.md on this one machine instead: CeleryExecutor, Redis as broker, PostgreSQL
as Airflow's metadata database. `airflow standalone` cannot do that (it forces
LocalExecutor and starts no Celery worker), so the script runs `airflow db migrate`, then
each component as its own process: api-server, scheduler, dag-processor, triggerer, and
`airflow celery worker` once the API server answers (tasks report to its execution API).
Their output is interleaved on stdout, each line prefixed with the component's name. If
one component exits, the others are stopped. On Ctrl-C/SIGTERM: SIGTERM to scheduler,
dag-processor, triggerer and worker (the worker lets running tasks finish), then to the
API server, SIGKILL to whatever is left of a component after its grace.

Settings (environment):
  AIRFLOW_LOCAL_EXECUTOR  `standalone` (default; also `local`) or `celery`
  AIRFLOW_PORT            port of the API server and UI (default 8080); the log servers
                          follow it (worker AIRFLOW_PORT+713, 8793 at 8080 as in Airflow;
                          triggerer AIRFLOW_PORT+10713), so two checkouts on different
                          ports do not collide. AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT and
                          AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT win when set.
  AIRFLOW_ADMIN_PASSWORD  password of user `admin` (default: the one stored in the
                          passwords file, else a generated one; printed either way)
  AIRFLOW_HOME            Airflow's home (default $CONTACT_IMPORT_DATA_DIR/airflow, or
                          $CONTACT_IMPORT_DATA_DIR/airflow-celery in celery mode)
  CDP_DATABASE_URL        the CDP database (default the embedded PostgreSQL under .data/pg)
  AIRFLOW__API__HOST      interface of the API server (default 127.0.0.1: this machine only;
                          0.0.0.0 to reach it from elsewhere, e.g. from outside a container)
Celery mode only:
  AIRFLOW__DATABASE__SQL_ALCHEMY_CONN   Airflow's metadata database; must be PostgreSQL
                          (default postgresql+psycopg2://postgres@localhost:5432/airflow_celery).
                          The database is created when the server has none of that name;
                          an unreachable server or a SQLite URL stops the script with exit 2.
  AIRFLOW__CELERY__BROKER_URL           the broker (default redis://127.0.0.1:6379/0); a
                          redis:// broker that does not answer PING stops the script with exit 2.
  AIRFLOW__CELERY__RESULT_BACKEND       Celery's results (default the metadata database:
                          db+postgresql+psycopg2://..., Airflow's own choice made explicit)
  AIRFLOW__CELERY__WORKER_CONCURRENCY   task slots of the worker (default 4, as parallelism)
  AIRFLOW__OPERATORS__DEFAULT_QUEUE     the queue tasks go to and the worker reads (default
                          `default`); with AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX
                          it keeps two set-ups on one Redis apart (the live test uses both).
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
import urllib.error
import urllib.request
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from airflow_local_celery import ConfigError, celery_defaults, celery_settings, redact
from airflow_local_processes import Component, Stop, run_celery, say, stop_components, stop_group
from contact_import import config, context, db, feeds, local_airflow, migrate, storage, workspaces
from contact_import.endpoints import FEEDS_DAG_ID, IMPORT_DAG_ID

ROOT = config.project_root()
DEMO_WORKSPACE = ROOT / "examples" / "demo-workspace.yaml"
SAMPLE_FILE = ROOT / "examples" / "line-contacts.csv"
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
ADMIN = "admin"

PROJECT_DAGS = (IMPORT_DAG_ID, FEEDS_DAG_ID)
# Log-server ports as offsets of the API port: 8080 gives the worker Airflow's own 8793; the
# triggerer's offset is far from the worker's, so checkouts on neighbouring ports (8080, 8081)
# do not take each other's log-server ports.
WORKER_LOG_OFFSET, TRIGGER_LOG_OFFSET = 713, 10713
LOG_PORT_SETTINGS = {"worker": "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT",
                     "triggerer": "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"}

STANDALONE, CELERY = "standalone", "celery"
MODES = {"": STANDALONE, "standalone": STANDALONE, "local": STANDALONE, "localexecutor": STANDALONE,
         "celery": CELERY, "celeryexecutor": CELERY}


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
    ctx = context.for_command_line()
    url = ctx.cdp_url
    revision = migrate.upgrade(url)
    with db.transaction(url) as conn:
        ws = workspaces.apply(conn, workspaces.load_file(DEMO_WORKSPACE))
    say(f"CDP database at revision {revision}; workspace {ws.slug!r} applied from {DEMO_WORKSPACE.name}")
    for feed in feeds.load():  # local inboxes exist, so the feeds' scans find them
        folder = feed.folder(ctx.storage)
        if storage.is_local(folder):
            storage.local_path(folder).mkdir(parents=True, exist_ok=True)
            say(f"Partner feed {feed.name!r}: drop files into {storage.local_path(folder)}"
                f" (DAG partner_feeds, {feed.schedule}; or trigger it)")
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


def log_server_ports(port: int) -> dict[str, int]:
    """The worker's and the triggerer's log-server ports for an API server on `port`: the
    environment's AIRFLOW__LOGGING__*_LOG_SERVER_PORT, else offsets of `port`. Airflow's fixed
    defaults (8793, 8794) would make a second checkout's scheduler or triggerer fail to bind."""
    ports = {}
    for name, setting in LOG_PORT_SETTINGS.items():
        value = os.environ.get(setting)
        offset = WORKER_LOG_OFFSET if name == "worker" else TRIGGER_LOG_OFFSET
        try:
            ports[name] = int(value) if value else port + offset
        except ValueError:
            raise ValueError(f"{setting} must be a number, not {value!r}") from None
        if not 0 < ports[name] < 65536:
            raise ValueError(f"the {name} log server would listen on port {ports[name]}: set AIRFLOW_PORT"
                             f" below {65536 - TRIGGER_LOG_OFFSET}, or set {setting}")
    return ports


def build_env(url: str, port: int) -> dict[str, str]:
    env = local_airflow.environment(url)  # AIRFLOW_HOME, dags/plugins folders, no examples, cdp_default
    home = Path(env["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    host = api_host()
    bindir = str(Path(sys.executable).parent)  # the venv's bin/: standalone starts `airflow ...` from PATH
    if env.get("PATH", "").split(os.pathsep)[0] != bindir:
        env["PATH"] = os.pathsep.join([bindir, env.get("PATH", "")])
    env["AIRFLOW__API__HOST"] = host
    env["AIRFLOW__API__PORT"] = str(port)
    for name, log_port in log_server_ports(port).items():
        env[LOG_PORT_SETTINGS[name]] = str(log_port)
    defaults = {
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "simple_auth_manager_passwords.json.generated"),
        # Tasks report to the API server; Airflow's default assumes http://localhost:8080.
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://{local_address(host)}:{port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": "",  # filled below unless set
        # LocalExecutor forks this many workers up front (32 by default, ~1 GB on its own).
        "AIRFLOW__CORE__PARALLELISM": "4",
    }
    for key, value in defaults.items():
        env[key] = os.environ.get(key) or value
    # DAGs run as soon as they are parsed (local_airflow.environment); unpause_project_dags
    # takes care of the ones a run before that setting recorded paused.
    if not env["AIRFLOW__API_AUTH__JWT_SECRET"]:
        env["AIRFLOW__API_AUTH__JWT_SECRET"] = jwt_secret(home)
    return env


# Runs in a child process with Airflow's environment: Airflow reads its settings when imported.
# Plain SQL on table `dag`, so a metadata database of an older Airflow (before `db migrate`) works
# too; a database not made yet (no SQLite file, no table) has nothing paused.
UNPAUSE_SCRIPT = r"""
import json, sys
from pathlib import Path
from sqlalchemy import bindparam, create_engine, inspect, make_url, text
from sqlalchemy.pool import NullPool
from airflow.configuration import conf

url = make_url(conf.get("database", "sql_alchemy_conn"))
if url.get_backend_name() == "sqlite" and not (url.database and Path(url.database).is_file()):
    print("[]"); sys.exit(0)
engine = create_engine(url, poolclass=NullPool)
paused = []
try:
    with engine.begin() as conn:
        if inspect(conn).has_table("dag"):
            ids = bindparam("ids", expanding=True)
            paused = [r[0] for r in conn.execute(
                text("SELECT dag_id FROM dag WHERE dag_id IN :ids AND is_paused ORDER BY dag_id").bindparams(ids),
                {"ids": sys.argv[1:]})]
            if paused:
                conn.execute(text("UPDATE dag SET is_paused = :no WHERE dag_id IN :ids").bindparams(ids),
                             {"no": False, "ids": paused})
except Exception as exc:  # one line for the parent's message, not a traceback
    sys.exit(f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}")
finally:
    engine.dispose()
print(json.dumps(paused))
"""


def unpause_project_dags(env: dict[str, str]) -> list[str]:
    """Unpause this project's DAGs in Airflow's metadata database before Airflow starts.

    A DAG keeps the pause state it was first recorded with: `contact-import import` (dag.test(),
    as `make demo` runs it) records both DAGs paused (Airflow's default), and a switch turned
    off in the UI stays off. Uploads would then wait forever; `make airflow` is a local target
    where they must run. Returns the DAG ids it unpaused.
    """
    python = str(Path(sys.executable))
    done = subprocess.run([python, "-c", UNPAUSE_SCRIPT, *PROJECT_DAGS], env=env, cwd=str(ROOT),
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise RuntimeError(lines[-1] if lines else f"exit {done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def banner(port: int, password: str, passwords_file: str, url: str, extra: list[str] | None = None) -> None:
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
        *(extra or []),
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


def api_answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{local_address(api_host())}:{port}/api/v2/version",
                                    timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def announce_when_up(port: int, show, stopped: threading.Event) -> None:
    """Print the banner again once the API server answers (it scrolls away under the logs)."""
    while not stopped.is_set():
        if api_answers(port):
            say("the API server is up")
            show()
            return
        stopped.wait(2)


def main() -> int:
    for name in ("CONTACT_IMPORT_DATA_DIR", "AIRFLOW_HOME"):  # every process must see the same folders
        if os.environ.get(name):
            os.environ[name] = str(Path(os.environ[name]).expanduser().resolve())
    mode = MODES.get((os.environ.get("AIRFLOW_LOCAL_EXECUTOR") or "").strip().lower())
    if mode is None:
        return fail(f"AIRFLOW_LOCAL_EXECUTOR must be `standalone` or `celery`,"
                    f" not {os.environ['AIRFLOW_LOCAL_EXECUTOR']!r}")
    if mode == CELERY and not os.environ.get("AIRFLOW_HOME"):  # apart from standalone's SQLite home
        os.environ["AIRFLOW_HOME"] = str((config.data_dir() / "airflow-celery").resolve())
    try:
        port = int(os.environ.get("AIRFLOW_PORT") or os.environ.get("AIRFLOW__API__PORT") or 8080)
    except ValueError:
        return fail(f"AIRFLOW_PORT must be a number, not {os.environ.get('AIRFLOW_PORT')!r}")
    if port_in_use(api_host(), port):
        return fail(f"port {port} is in use; stop what runs there or set AIRFLOW_PORT to another port")
    try:
        log_ports = log_server_ports(port)
    except ValueError as exc:
        return fail(str(exc))
    for name, log_port in log_ports.items():  # the log servers listen on every interface
        if port_in_use("0.0.0.0", log_port):
            return fail(f"port {log_port} for the {name}'s log server is in use (another Airflow?); set"
                        f" AIRFLOW_PORT to another port, or {LOG_PORT_SETTINGS[name]}")
    celery: dict[str, str] = {}
    if mode == CELERY:
        try:
            celery = celery_settings()
        except ConfigError as exc:
            return fail(str(exc))
    try:
        url = prepare_cdp()
    except (workspaces.WorkspaceFileError, LookupError, ValueError, db.psycopg2.Error, SQLAlchemyError) as exc:
        return fail(f"cannot prepare the CDP database: {str(exc).strip().splitlines()[0]}")

    env = build_env(url, port)
    extra: list[str] = []
    if mode == CELERY:
        env.update(celery)
        celery_defaults(env)
        extra = [f"Executor:      CeleryExecutor, worker concurrency {env['AIRFLOW__CELERY__WORKER_CONCURRENCY']},"
                 f" queue {env.get('AIRFLOW__OPERATORS__DEFAULT_QUEUE') or 'default'}",
                 f"Broker:        {redact(env['AIRFLOW__CELERY__BROKER_URL'])}",
                 f"Metadata:      {redact(env['AIRFLOW__DATABASE__SQL_ALCHEMY_CONN'])}",
                 f"Results:       {redact(env['AIRFLOW__CELERY__RESULT_BACKEND'])}"]
    home = Path(env["AIRFLOW_HOME"])
    try:
        unpaused = unpause_project_dags(env)
    except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError, IndexError) as exc:
        return fail(f"cannot read Airflow's metadata database to unpause {', '.join(PROJECT_DAGS)}: {exc}")
    if unpaused:
        say(f"unpaused {', '.join(unpaused)} (an earlier run had recorded them paused)")
    passwords_file = Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    password = admin_password(passwords_file)
    say(f"AIRFLOW_HOME={home}")
    say(f"DAGs from {env['AIRFLOW__CORE__DAGS_FOLDER']}, plugins from {env['AIRFLOW__CORE__PLUGINS_FOLDER']}")

    def show() -> None:
        banner(port, password, str(passwords_file), url, extra)

    show()

    def on_signal(signum, frame):
        raise Stop(signum)

    proc: subprocess.Popen | None = None
    components: list[Component] = []
    stopped = threading.Event()
    code = 0
    try:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, on_signal)
        if mode == CELERY:
            code = run_celery(env, lambda: api_answers(port), show, components)
            raise Stop(None)
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
        if components:
            stop_components(components)
        say("stopped")
    return code if code >= 0 else 1


if __name__ == "__main__":
    sys.exit(main())
