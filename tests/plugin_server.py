"""The plugin's app served by uvicorn as Airflow's API server serves it (mounted at
PLUGIN_PREFIX), the caller and the CDP database given: in a thread of the test's process
(`served`), or in a process of its own that a test can kill
(`python -m tests.plugin_server CDP_URL PORT`)."""
from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager
from typing import Iterator

import httpx
import uvicorn
from fastapi import FastAPI

from contact_import.endpoints import PLUGIN_PREFIX
from tests.helpers import ROOT, ctx, free_port

STARTUP_TIMEOUT = 120  # seconds until the server answers (a busy machine)


def app_for(cdp_url: str) -> FastAPI:
    """Airflow's API server as far as the plugin sees it: the app mounted, anyone a writer."""
    if str(ROOT / "plugins") not in sys.path:
        sys.path.insert(0, str(ROOT / "plugins"))  # as Airflow does with its plugins folder
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from contact_imports_api import auth, cdp
    from contact_imports_api.app import app

    caller = auth.Caller(user=SimpleAuthManagerUser(username="alice", role="user"), token="a-token")
    app.dependency_overrides[auth.reader] = lambda: caller
    app.dependency_overrides[auth.writer] = lambda: caller
    app.dependency_overrides[cdp.cdp_context] = lambda: ctx(cdp_url)
    server = FastAPI()
    server.mount(PLUGIN_PREFIX, app)
    return server


def wait_until_up(url: str, alive=lambda: True) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline and alive():
        try:
            if httpx.get(f"{url}{PLUGIN_PREFIX}/openapi.json", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the plugin's server at {url} did not start")


@contextmanager
def served(cdp_url: str) -> Iterator[str]:
    """The base URL of the app served by uvicorn on one event loop in a thread of this process."""
    mounted = app_for(cdp_url)
    from contact_imports_api.app import app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(mounted, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, thread.is_alive)
        yield url
    finally:
        server.should_exit = True
        thread.join(30)
        app.dependency_overrides.clear()


if __name__ == "__main__":
    uvicorn.run(app_for(sys.argv[1]), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
