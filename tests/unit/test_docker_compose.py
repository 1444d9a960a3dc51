"""docker-compose.yaml, Dockerfile and .dockerignore: what would break a deployment,
checked without Docker (the development machines have no Docker engine).

The compose file is read as Compose reads it: YAML with anchors and merge keys, then
variable interpolation (`${VAR:-default}`, nested defaults, `$$`), then the Compose
specification's JSON schema (tests/data/compose-spec/, vendored with its source). On
top of the schema: the services of Airflow's official docker-compose.yaml for 3.x with
their commands, the CeleryExecutor wiring, the dependency graph, healthchecks, volumes,
the environment this project reads, and the image built from the Dockerfile.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
REQUIREMENTS = ROOT / "requirements.txt"
SCHEMA = ROOT / "tests" / "data" / "compose-spec" / "compose-spec.json"

# Airflow's official docker-compose.yaml for 3.x: service -> command.
OFFICIAL_COMMANDS = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker",
}
AIRFLOW_SERVICES = [*OFFICIAL_COMMANDS, "airflow-init"]
# Services that run this project's code (DAGs, plugin, CLI) and so need its environment.
PROJECT_SERVICES = [*AIRFLOW_SERVICES, "cdp-migrate"]
ONE_SHOTS = ["airflow-init", "cdp-migrate", "minio-init"]
WITH_HEALTHCHECK = ["redis", "postgres", "cdp-db", "minio", "airflow-apiserver", "airflow-scheduler",
                    "airflow-dag-processor", "airflow-triggerer", "airflow-worker"]
RUNTIME_FOLDERS = {"logs", "config", "inbox"}
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}

# The settings this project reads (docs/operations.md, include/contact_import/config.py),
# and the Airflow connections its code uses. More are found by scanning the code below.
PROJECT_ENV = {
    "CDP_DATABASE_URL", "CONTACT_IMPORT_STORAGE", "CONTACT_IMPORT_FEEDS", "CONTACT_IMPORT_MAX_UPLOAD_MB",
    "CONTACT_IMPORT_CHUNK_ROWS", "CONTACT_IMPORT_VALIDATE_CHUNK_ROWS", "CONTACT_IMPORT_MAX_ACTIVE",
    "CONTACT_IMPORT_MAX_ERRORS", "AIRFLOW_API_URL", "AIRFLOW_CONN_AWS_DEFAULT", "AIRFLOW_CONN_CDP_DEFAULT",
}
NUMERIC_ENV = ["CONTACT_IMPORT_MAX_UPLOAD_MB", "CONTACT_IMPORT_CHUNK_ROWS", "CONTACT_IMPORT_VALIDATE_CHUNK_ROWS",
               "CONTACT_IMPORT_MAX_ACTIVE", "CONTACT_IMPORT_MAX_ERRORS"]
# The official init script tests AIRFLOW_UID itself, so it is the one variable used without a default.
NO_DEFAULT_ALLOWED = {"AIRFLOW_UID"}


# --- Compose's variable interpolation ---------------------------------------------------

_NAME = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*")
_OPERATORS = (":-", ":?", ":+", "-", "?", "+")


def interpolate(text: str, env: dict[str, str], unset: set[str]) -> str:
    """`text` as Compose interpolates it; names used without a default and not in `env` go
    to `unset`."""
    out, i = [], 0
    while i < len(text):
        if text[i] != "$":
            out.append(text[i])
            i += 1
        elif text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("${", i):
            end = _closing_brace(text, i + 2)
            out.append(_expression(text[i + 2:end], env, unset))
            i = end + 1
        elif match := _NAME.match(text, i + 1):
            if match.group() not in env:
                unset.add(match.group())
            out.append(env.get(match.group(), ""))
            i = match.end()
        else:
            out.append("$")
            i += 1
    return "".join(out)


def _closing_brace(text: str, start: int) -> int:
    depth, i = 0, start
    while i < len(text):
        if text.startswith("$$", i):
            i += 2
            continue
        if text.startswith("${", i):
            depth, i = depth + 1, i + 2
            continue
        if text[i] == "}":
            if depth == 0:
                return i
            depth -= 1
        i += 1
    raise ValueError(f"unclosed ${{ in {text!r}")


def _expression(expr: str, env: dict[str, str], unset: set[str]) -> str:
    match = _NAME.match(expr)
    if not match:
        raise ValueError(f"invalid interpolation ${{{expr}}}")
    name, rest = match.group(), expr[match.end():]
    value = env.get(name)
    if not rest:
        if value is None:
            unset.add(name)
        return value or ""
    op = next((op for op in _OPERATORS if rest.startswith(op)), None)
    if op is None:
        raise ValueError(f"invalid interpolation ${{{expr}}}")
    operand = rest[len(op):]
    present = bool(value) if op.startswith(":") else value is not None
    if op in (":-", "-"):
        return value if present else interpolate(operand, env, unset)
    if op in (":?", "?"):
        if not present:
            raise ValueError(f"{name}: {interpolate(operand, env, unset)}")
        return value
    return interpolate(operand, env, unset) if present else ""


def resolve(node, env: dict[str, str], unset: set[str]):
    """Interpolate every string value (not keys) of a loaded compose document."""
    if isinstance(node, str):
        return interpolate(node, env, unset)
    if isinstance(node, list):
        return [resolve(item, env, unset) for item in node]
    if isinstance(node, dict):
        return {key: resolve(value, env, unset) for key, value in node.items()}
    return node


def test_interpolation_follows_compose():
    unset: set[str] = set()
    env = {"SET": "v", "EMPTY": ""}
    assert interpolate("${SET:-d} ${EMPTY:-d} ${EMPTY-d} ${NOPE-d} $SET $$SET $${SET}", env, unset) == "v d  d v $SET ${SET}"
    assert interpolate("${NOPE:-${EMPTY:-${SET}}}/${SET:+alt}${EMPTY:+alt}", env, unset) == "v/alt"
    assert unset == set()
    interpolate("${NOPE}", env, unset)
    assert unset == {"NOPE"}
    with pytest.raises(ValueError):
        interpolate("${EMPTY:?needed}", env, unset)


# --- loading ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def load(env: dict[str, str] | None = None) -> tuple[dict, set[str]]:
    unset: set[str] = set()
    return resolve(yaml.safe_load(COMPOSE_FILE.read_text()), env or {}, unset), unset


@pytest.fixture(scope="module")
def compose() -> dict:
    """The file as Compose sees it with no variables set: every default applies."""
    return load()[0]


def services(doc: dict) -> dict[str, dict]:
    return doc["services"]


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return env


def command(service: dict) -> str:
    cmd = service.get("command")
    return " ".join(cmd) if isinstance(cmd, list) else " ".join(shlex.split(cmd or ""))


def depends_on(service: dict) -> dict[str, dict]:
    deps = service.get("depends_on") or {}
    return {name: {"condition": "service_started"} for name in deps} if isinstance(deps, list) else deps


def volume_parts(entry) -> tuple[str | None, str]:
    if isinstance(entry, dict):
        return entry.get("source"), entry["target"]
    parts = entry.split(":")
    return (parts[0], parts[1]) if len(parts) > 1 else (None, parts[0])


def is_bind(source: str) -> bool:
    return source.startswith((".", "/", "~"))


# --- the schema and the YAML itself -------------------------------------------------------

def test_valid_against_the_compose_specification(compose):
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.validators.validator_for(schema)
    validator.check_schema(schema)
    errors = [f"{e.json_path}: {e.message[:300]}" for e in validator(schema).iter_errors(compose)]
    assert not errors, "\n".join(errors)


def test_anchors_and_merge_keys_resolve(raw):
    text = COMPOSE_FILE.read_text()
    anchors = set(re.findall(r"&([\w-]+)", text))
    aliases = set(re.findall(r"\*([\w-]+)", text))
    assert aliases <= anchors, f"aliases without an anchor: {aliases - anchors}"
    assert {"airflow-common", "airflow-common-env", "airflow-common-depends-on"} <= anchors

    def merge_keys_left(node, where="") -> list[str]:
        if isinstance(node, dict):
            return [where] * ("<<" in node) + [p for k, v in node.items() for p in merge_keys_left(v, f"{where}.{k}")]
        if isinstance(node, list):
            return [p for v in node for p in merge_keys_left(v, where)]
        return []

    assert not merge_keys_left(raw), "merge keys YAML did not resolve"

    common = raw["x-airflow-common"]
    for name, service in services(raw).items():
        if service.get("image") != common["image"]:
            continue
        # A service that overrides `environment` without `<<: *airflow-common-env` loses it all.
        for key in ("build", "user", "volumes", "env_file"):
            assert service.get(key) == common[key] or (name == "airflow-init" and key == "user"), (name, key)
        missing = set(common["environment"]) - set(environment(service))
        assert not missing, f"{name} lacks the common environment: {sorted(missing)}"


def test_every_variable_has_a_default():
    _, unset = load()
    assert unset <= NO_DEFAULT_ALLOWED, f"variables without a default: {sorted(unset - NO_DEFAULT_ALLOWED)}"


# --- Airflow's own services ---------------------------------------------------------------

def test_every_official_airflow_service_with_its_command(compose):
    svc = services(compose)
    for name, cmd in OFFICIAL_COMMANDS.items():
        assert name in svc, f"missing service {name}"
        assert command(svc[name]) == cmd, (name, command(svc[name]))
    init = svc["airflow-init"]
    assert init["entrypoint"] == "/bin/bash" and init["user"] == "0:0"
    script = command(init)
    assert "/entrypoint airflow version" in script and "mkdir" in script and "chown" in script
    assert environment(init)["_AIRFLOW_DB_MIGRATE"] == "true"
    assert svc["redis"]["image"].startswith("redis:")
    assert svc["postgres"]["image"].startswith("postgres:")


def test_celery_executor_redis_broker_postgres_metadata(compose):
    svc = services(compose)
    secrets = set()
    for name in AIRFLOW_SERVICES:
        env = environment(svc[name])
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name

        broker = urlsplit(env["AIRFLOW__CELERY__BROKER_URL"])
        assert broker.scheme == "redis" and broker.hostname in svc, (name, broker)
        assert svc[broker.hostname]["image"].startswith("redis:")
        assert str(broker.port or 6379) in map(str, svc[broker.hostname].get("expose", [6379]))

        for key, scheme in (("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "postgresql"),
                            ("AIRFLOW__CELERY__RESULT_BACKEND", "db+postgresql")):
            url = urlsplit(env[key])
            assert url.scheme.split("+psycopg")[0] == scheme, (name, key, url.scheme)
            db = svc[url.hostname]
            assert db["image"].startswith("postgres:"), (name, key)
            db_env = environment(db)
            assert (url.username, url.password, url.path.lstrip("/")) == (
                db_env["POSTGRES_USER"], db_env["POSTGRES_PASSWORD"], db_env["POSTGRES_DB"]), (name, key)
        assert urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]).hostname != "cdp-db", "metadata in the CDP"

        api = urlsplit(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
        assert api.hostname == "airflow-apiserver" and api.path == "/execution/", api
        assert any(str(p).split(":")[-1] == str(api.port) for p in svc["airflow-apiserver"]["ports"])
        secrets.add(env["AIRFLOW__API_AUTH__JWT_SECRET"])
    assert len(secrets) == 1 and "" not in secrets, "one JWT secret shared by every Airflow component"


def test_depends_on_names_services_with_valid_conditions(compose):
    svc = services(compose)
    for name, service in svc.items():
        for target, spec in depends_on(service).items():
            assert target in svc, f"{name} depends on unknown service {target}"
            assert target != name, f"{name} depends on itself"
            condition = spec.get("condition")
            assert condition in CONDITIONS, (name, target, condition)
            dependency = svc[target]
            if condition == "service_healthy":
                assert dependency.get("healthcheck", {}).get("test"), f"{target} has no healthcheck for {name}"
            if condition == "service_completed_successfully":
                assert dependency.get("restart", "no") not in ("always", "unless-stopped"), (
                    f"{target} is waited for to complete but restarts forever")
            if not service.get("profiles"):
                assert not dependency.get("profiles"), f"{name} depends on {target}, which is in a profile"

    def visit(node: str, path: tuple[str, ...]) -> None:
        assert node not in path, f"dependency cycle: {' -> '.join(path + (node,))}"
        for target in depends_on(svc[node]):
            visit(target, path + (node,))

    for name in svc:
        visit(name, ())

    for name in OFFICIAL_COMMANDS:
        deps = depends_on(svc[name])
        for target, condition in (("redis", "service_healthy"), ("postgres", "service_healthy"),
                                  ("airflow-init", "service_completed_successfully"),
                                  ("cdp-migrate", "service_completed_successfully"),
                                  ("minio-init", "service_completed_successfully")):
            assert deps.get(target, {}).get("condition") == condition, (name, target)
    assert depends_on(svc["cdp-migrate"])["cdp-db"]["condition"] == "service_healthy"
    assert depends_on(svc["minio-init"])["minio"]["condition"] == "service_healthy"


def test_healthchecks(compose):
    svc = services(compose)
    for name in WITH_HEALTHCHECK:
        check = svc[name].get("healthcheck") or {}
        test = check.get("test")
        assert test and not check.get("disable") and test != ["NONE"], f"{name} has no healthcheck"
    for name in ("postgres", "cdp-db"):
        test = svc[name]["healthcheck"]["test"]
        assert "pg_isready" in test and test[test.index("-U") + 1] == environment(svc[name])["POSTGRES_USER"], name
    for name in ONE_SHOTS:
        assert svc[name].get("restart", "no") == "no", f"one-shot {name} must not restart"


def test_volumes_are_declared_and_data_persists(compose):
    svc = services(compose)
    declared = set(compose.get("volumes") or {})
    used = set()
    for name, service in svc.items():
        for entry in service.get("volumes", []):
            source, target = volume_parts(entry)
            if source is None:
                continue
            if is_bind(source):
                parts = Path(source).parts
                # logs/, config/ and inbox/ are made at run time (airflow-init); the rest is code.
                if source.startswith(".") and parts and parts[0] not in RUNTIME_FOLDERS:
                    assert (ROOT / source).is_dir(), f"{name} mounts missing folder {source}"
            else:
                assert source in declared, f"{name} uses undeclared volume {source}"
                used.add(source)
    assert declared == used, f"declared but unused volumes: {declared - used}"
    for name, target in (("postgres", "/var/lib/postgresql/data"), ("cdp-db", "/var/lib/postgresql/data"),
                         ("minio", "/data")):
        mounts = dict(reversed(volume_parts(v)) for v in svc[name]["volumes"])
        assert mounts.get(target) in declared, f"{name} keeps {target} outside a named volume"


def test_workers_scale(compose):
    worker = services(compose)["airflow-worker"]
    assert "container_name" not in worker, "a fixed container name stops `--scale airflow-worker=N`"
    assert not worker.get("ports"), "a published port stops `--scale airflow-worker=N`"
    assert environment(worker)["DUMB_INIT_SETSID"] == "0"


# --- this project's services and environment ---------------------------------------------

def env_read_by_code() -> set[str]:
    """CONTACT_IMPORT_* and CDP_* variables the library, DAGs and plugin read."""
    pattern = re.compile(r"""(?:environ(?:\.get|\.setdefault)?\s*[\[(]|getenv\s*\()\s*["']((?:CONTACT_IMPORT|CDP)_[A-Z0-9_]+)["']""")
    files = [*(ROOT / "include" / "contact_import").rglob("*.py"), *(ROOT / "dags").glob("*.py"),
             *(ROOT / "plugins").glob("*.py")]
    return {name for f in files for name in pattern.findall(f.read_text(encoding="utf-8"))}


def test_the_environment_this_project_reads_is_set(compose):
    found = env_read_by_code()
    assert {"CDP_DATABASE_URL", "CONTACT_IMPORT_STORAGE", "CONTACT_IMPORT_CHUNK_ROWS"} <= found, found
    wanted = PROJECT_ENV | found
    svc = services(compose)
    for name in PROJECT_SERVICES:
        env = environment(svc[name])
        missing = sorted(key for key in wanted if not env.get(key))
        assert not missing, f"{name} lacks {missing}"
        for key in NUMERIC_ENV:
            assert int(env[key]) > 0, (name, key, env[key])


def test_cdp_database_is_the_cdp_db_service():
    for env in ({}, {"CDP_DB_PASSWORD": "s3cret"}):
        doc, _ = load(env)
        svc = services(doc)
        db = environment(svc["cdp-db"])
        for name in PROJECT_SERVICES:
            service_env = environment(svc[name])
            url = urlsplit(service_env["CDP_DATABASE_URL"])
            assert url.scheme.startswith("postgres") and url.hostname == "cdp-db", (name, url)
            assert (url.username, url.password, url.path.lstrip("/")) == (
                db["POSTGRES_USER"], db["POSTGRES_PASSWORD"], db["POSTGRES_DB"]), (name, env)
            assert service_env["AIRFLOW_CONN_CDP_DEFAULT"] == service_env["CDP_DATABASE_URL"]
    doc, _ = load({"CDP_DATABASE_URL": "postgresql://u:p@cdp.example:5432/cdp"})
    assert environment(services(doc)["airflow-worker"])["CDP_DATABASE_URL"] == "postgresql://u:p@cdp.example:5432/cdp"


def test_storage_is_the_minio_bucket_through_aws_default():
    for env in ({}, {"MINIO_BUCKET": "other-bucket", "MINIO_ROOT_USER": "admin", "MINIO_ROOT_PASSWORD": "pw"}):
        doc, _ = load(env)
        svc = services(doc)
        minio, init = svc["minio"], svc["minio-init"]
        bucket = environment(init)["MINIO_BUCKET"]
        assert "mc mb" in command(init) and "${MINIO_BUCKET}" in command(init)
        assert "minio:9000" in command(init) and "9000" in map(str, minio["expose"])
        for name in PROJECT_SERVICES:
            service_env = environment(svc[name])
            storage = urlsplit(service_env["CONTACT_IMPORT_STORAGE"])
            # ObjectStoragePath takes the connection id from the URI's user part.
            assert (storage.scheme, storage.username, storage.hostname) == ("s3", "aws_default", bucket), storage
            conn = json.loads(service_env["AIRFLOW_CONN_AWS_DEFAULT"])
            assert conn["conn_type"] == "aws"
            endpoint = urlsplit(conn["extra"]["endpoint_url"])
            assert endpoint.hostname == "minio" and str(endpoint.port) in map(str, minio["expose"])
            assert (conn["login"], conn["password"]) == (
                environment(minio)["MINIO_ROOT_USER"], environment(minio)["MINIO_ROOT_PASSWORD"])
            assert (conn["login"], conn["password"]) == (
                environment(init)["MINIO_ROOT_USER"], environment(init)["MINIO_ROOT_PASSWORD"])


def test_paths_in_the_environment_are_mounted(compose):
    for name in PROJECT_SERVICES:
        service = services(compose)[name]
        env = environment(service)
        mounts = {target: source for source, target in map(volume_parts, service["volumes"])}
        assert mounts.get(env["CONTACT_IMPORT_EXPECTATIONS"]) == "./expectations", name
        feeds = Path(env["CONTACT_IMPORT_FEEDS"])
        assert mounts.get(str(feeds.parent)) == "./include", f"{name}: {feeds} is not in the mounted include/"
        assert mounts.get("/opt/airflow/dags") == "./dags" and mounts.get("/opt/airflow/plugins") == "./plugins"


def test_feed_inboxes_are_shared_by_the_containers(compose):
    """Each inbox of include/feeds.yaml, expanded with the containers' environment as the
    feeds code expands it, is in the MinIO bucket or in a folder every Airflow service mounts."""
    feeds_file = ROOT / "include" / "feeds.yaml"
    assert feeds_file.exists(), "the project ships include/feeds.yaml"
    feeds = (yaml.safe_load(feeds_file.read_text()) or {}).get("feeds") or []
    bucket = environment(services(compose)["minio-init"])["MINIO_BUCKET"]
    for name in AIRFLOW_SERVICES:
        service = services(compose)[name]
        env = environment(service)
        mounted = [target for source, target in map(volume_parts, service["volumes"]) if source]
        for feed in feeds:
            inbox = interpolate(str(feed["inbox"]), env, set())
            url = urlsplit(inbox)
            if url.scheme in ("", "file"):
                folder = Path(url.path).parent
                assert any(folder.is_relative_to(target) for target in mounted), (
                    f"{name}: inbox {inbox} of feed {feed['name']} is not on a mount")
            else:
                assert url.scheme == "s3" and url.hostname == bucket, f"feed {feed['name']}: {inbox}"


def test_aws_default_from_compose_reads_and_writes_storage(tmp_path):
    """The connection JSON and storage URI exactly as compose sets them (endpoint moved to a
    local moto S3 server) write and read a file through Airflow's ObjectStoragePath."""
    pytest.importorskip("s3fs")
    server_module = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        doc, _ = load({"S3_ENDPOINT_URL": f"http://{host}:{port}"})
        worker_env = environment(services(doc)["airflow-worker"])
        conn = json.loads(worker_env["AIRFLOW_CONN_AWS_DEFAULT"])
        bucket = environment(services(doc)["minio-init"])["MINIO_BUCKET"]
        boto3.client("s3", endpoint_url=conn["extra"]["endpoint_url"], aws_access_key_id=conn["login"],
                     aws_secret_access_key=conn["password"], region_name=conn["extra"]["region_name"]
                     ).create_bucket(Bucket=bucket)
        probe = textwrap.dedent("""
            import os
            from airflow.sdk import ObjectStoragePath
            path = ObjectStoragePath(os.environ["CONTACT_IMPORT_STORAGE"]) / "imports" / "probe" / "upload.csv"
            path.write_text("uid,name\\nU1,Amy\\n")
            print(path.conn_id, path.read_text().splitlines()[1])
        """)
        env = {**os.environ, "AIRFLOW_HOME": str(tmp_path),
               "AIRFLOW_CONN_AWS_DEFAULT": worker_env["AIRFLOW_CONN_AWS_DEFAULT"],
               "CONTACT_IMPORT_STORAGE": worker_env["CONTACT_IMPORT_STORAGE"]}
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
            env.pop(key, None)
        done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.strip().splitlines()[-1] == "aws_default U1,Amy"
        keys = [o["Key"] for o in boto3.client(
            "s3", endpoint_url=conn["extra"]["endpoint_url"], aws_access_key_id=conn["login"],
            aws_secret_access_key=conn["password"], region_name="us-east-1").list_objects_v2(Bucket=bucket)["Contents"]]
        assert keys == [urlsplit(worker_env["CONTACT_IMPORT_STORAGE"]).path.lstrip("/") + "/imports/probe/upload.csv"]
    finally:
        server.stop()


# --- the image ----------------------------------------------------------------------------

def pinned(requirement: str) -> str:
    match = re.search(rf"^{re.escape(requirement)}==(\S+)$", REQUIREMENTS.read_text(), re.M)
    assert match, f"{requirement} is not pinned in requirements.txt"
    return match.group(1)


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_airflow_services_run_the_image_built_from_the_dockerfile(compose):
    svc = services(compose)
    images = set()
    for name in [*PROJECT_SERVICES, "airflow-cli", "flower"]:
        build = svc[name].get("build")
        assert build, f"{name} is not built from the Dockerfile"
        context = build if isinstance(build, str) else build.get("context", ".")
        dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        assert (ROOT / context / dockerfile).resolve() == DOCKERFILE, (name, build)
        images.add(svc[name]["image"])
    assert len(images) == 1, f"one image for every Airflow service, not {images}"
    assert not images.pop().startswith("apache/airflow"), "the stock image lacks this project: name the built one"


def test_dockerfile_base_image_matches_the_pinned_airflow():
    froms = [args for op, args in dockerfile_instructions() if op == "FROM"]
    assert len(froms) == 1, froms
    match = re.fullmatch(r"apache/airflow:(\d+\.\d+\.\d+)-python(\d+\.\d+)", froms[0].split()[0])
    assert match, f"base image {froms[0]} is not apache/airflow:X.Y.Z-pythonA.B"
    assert match.group(1) == pinned("apache-airflow"), "Dockerfile and requirements.txt disagree on Airflow"
    compiled_for = re.search(r"--python-version\s+(\d+\.\d+)", REQUIREMENTS.read_text())
    assert compiled_for and compiled_for.group(1) == match.group(2), "requirements.txt compiled for another Python"


def test_dockerfile_installs_requirements_and_the_project():
    runs = [args for op, args in dockerfile_instructions() if op == "RUN"]
    assert any(re.search(r"pip install [^&]*\"apache-airflow==\$\{AIRFLOW_VERSION\}\"[^&]*-r \S*requirements\.txt", run)
               for run in runs), "requirements.txt must be installed together with apache-airflow==${AIRFLOW_VERSION}"
    assert any(re.search(r"pip install [^&]*apache-airflow-providers-amazon\[s3fs\]", run) for run in runs), (
        "s3:// storage needs the amazon provider with s3fs")
    assert any(re.search(r"pip install [^&]*-e /opt/airflow(\s|$)", run) for run in runs), "the project is not installed"
    copies = {}
    for op, args in dockerfile_instructions():
        if op == "COPY":
            parts = [p for p in args.split() if not p.startswith("--")]
            for source in parts[:-1]:
                copies[source] = parts[-1]
    for source in ("requirements.txt", "pyproject.toml", "include", "dags", "plugins", "expectations", "examples"):
        assert source in copies, f"the image does not copy {source}"
    assert copies["pyproject.toml"] == "/opt/airflow/pyproject.toml" and copies["include"] == "/opt/airflow/include"
    # The editable install finds contact_import under /opt/airflow/include, where compose mounts ./include.
    assert 'where = ["include"]' in (ROOT / "pyproject.toml").read_text()
    for source in copies:
        assert (ROOT / source).exists(), f"COPY {source}: missing"


def _ignore_regex(pattern: str) -> re.Pattern:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        else:
            out += {"*": "[^/]*", "?": "[^/]"}.get(pattern[i], re.escape(pattern[i]))
            i += 1
    return re.compile(out + r"\Z")


def dockerignored(path: str) -> bool:
    """Whether .dockerignore keeps `path` out of the build context (a matching folder takes
    its contents with it; a later `!pattern` brings a path back)."""
    parts = Path(path).parts
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    ignored = False
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        regex = _ignore_regex(line.lstrip("!").strip("/"))
        if any(regex.match(prefix) for prefix in prefixes):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_what_the_image_needs_and_drops_local_state():
    for op, args in dockerfile_instructions():
        if op == "COPY":
            for source in [p for p in args.split() if not p.startswith("--")][:-1]:
                assert not dockerignored(source), f".dockerignore drops {source}, which the Dockerfile copies"
    for needed in ("include/contact_import/cli.py", "include/contact_import/migrations/env.py",
                   "dags/contact_import_dag.py", "plugins/contact_imports_plugin.py", "examples/demo-workspace.yaml"):
        assert not dockerignored(needed), needed
    for local in (".venv", ".data", ".git", ".env", "include/contact_import/__pycache__", "logs", "config"):
        assert dockerignored(local), f"{local} would be sent to the image build"
