"""`make airflow`'s settings (scripts/airflow_local.py) without starting Airflow: the ports a
checkout listens on, so that two checkouts run side by side."""
from __future__ import annotations

import socket
import sys

import pytest

from tests.helpers import ROOT

sys.path.insert(0, str(ROOT / "scripts"))

import airflow_local  # noqa: E402

WORKER, TRIGGER = airflow_local.LOG_PORT_SETTINGS["worker"], airflow_local.LOG_PORT_SETTINGS["triggerer"]


@pytest.fixture
def local_env(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))
    for name in (WORKER, TRIGGER, "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def ports_of(env: dict[str, str]) -> set[int]:
    return {int(env["AIRFLOW__API__PORT"]), int(env[WORKER]), int(env[TRIGGER])}


def test_the_log_servers_follow_the_api_port(local_env):
    default = airflow_local.build_env("postgresql://cdp@localhost/cdp", 8080)
    assert (default[WORKER], default[TRIGGER]) == ("8793", "18793")  # the worker's is Airflow's own default
    moved = airflow_local.build_env("postgresql://cdp@localhost/cdp", 8090)
    assert moved["AIRFLOW__API__PORT"] == "8090" and (moved[WORKER], moved[TRIGGER]) == ("8803", "18803")


@pytest.mark.parametrize("other", [8081, 8082, 8090, 9080, 9793])
def test_two_checkouts_on_different_ports_share_no_port(local_env, other):
    first = airflow_local.build_env("postgresql://cdp@localhost/cdp", 8080)
    second = airflow_local.build_env("postgresql://cdp@localhost/cdp", other)
    assert len(ports_of(first)) == len(ports_of(second)) == 3
    assert not ports_of(first) & ports_of(second)


def test_log_server_ports_set_in_the_environment_win(local_env):
    local_env.setenv(WORKER, "9001")
    local_env.setenv(TRIGGER, "9002")
    env = airflow_local.build_env("postgresql://cdp@localhost/cdp", 8090)
    assert (env[WORKER], env[TRIGGER]) == ("9001", "9002")


def test_dags_start_unpaused_whatever_the_environment_says(local_env):
    local_env.setenv("AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION", "True")
    assert airflow_local.build_env("postgresql://cdp@localhost/cdp", 8080)[
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] == "False"


def free_port_with_room() -> int:
    """A free API port whose log-server ports exist and are free too."""
    for _ in range(100):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port + airflow_local.TRIGGER_LOG_OFFSET < 65536 and not any(
                airflow_local.port_in_use("0.0.0.0", port + offset)
                for offset in (airflow_local.WORKER_LOG_OFFSET, airflow_local.TRIGGER_LOG_OFFSET)):
            return port
    pytest.skip("no free port with free log-server ports")


def test_a_taken_log_server_port_stops_make_airflow_with_one_line(local_env, capsys):
    port = free_port_with_room()
    local_env.setenv("AIRFLOW_PORT", str(port))
    with socket.socket() as taken:  # another checkout's worker log server
        taken.bind(("0.0.0.0", port + airflow_local.WORKER_LOG_OFFSET))
        taken.listen()
        assert airflow_local.main() == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert f"port {port + airflow_local.WORKER_LOG_OFFSET} for the worker's log server is in use" in line
    assert WORKER in line


def test_an_api_port_too_high_for_its_log_servers_is_refused_with_one_line(local_env, capsys):
    local_env.setenv("AIRFLOW_PORT", "60000")
    local_env.setenv("AIRFLOW__API__HOST", "127.0.0.1")
    if airflow_local.port_in_use("127.0.0.1", 60000):
        pytest.skip("port 60000 is taken on this machine")
    assert airflow_local.main() == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "set AIRFLOW_PORT below 54823" in line and TRIGGER in line
