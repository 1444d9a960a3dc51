"""The CLI's way through the upload API when AIRFLOW_API_URL is set (README.md).

Credentials: AIRFLOW_API_TOKEN (a JWT from /auth/token), or AIRFLOW_USERNAME and
AIRFLOW_PASSWORD to get one (user `admin` with AIRFLOW_ADMIN_PASSWORD by default).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from .endpoints import API_URL_PREFIX
from .statuses import FINISHED


class ApiError(Exception):
    def __init__(self, status: int, detail: str):
        super().__init__(f"upload API answered {status}: {detail}")
        self.status = status


def configured() -> bool:
    return bool(os.environ.get("AIRFLOW_API_URL"))


def _client():
    import httpx  # only the commands that call the API pay for importing it

    base = os.environ["AIRFLOW_API_URL"].rstrip("/")
    token = os.environ.get("AIRFLOW_API_TOKEN")
    if not token:
        username = os.environ.get("AIRFLOW_USERNAME", "admin")
        password = os.environ.get("AIRFLOW_PASSWORD") or os.environ.get("AIRFLOW_ADMIN_PASSWORD")
        if not password:
            raise ApiError(401, "set AIRFLOW_API_TOKEN, or AIRFLOW_USERNAME and AIRFLOW_PASSWORD")
        answer = httpx.post(f"{base}/auth/token", json={"username": username, "password": password}, timeout=30)
        if answer.status_code >= 400:
            raise ApiError(answer.status_code, f"login as {username} refused")
        token = answer.json()["access_token"]
    return httpx.Client(base_url=base + API_URL_PREFIX, headers={"Authorization": f"Bearer {token}"}, timeout=120)


def _checked(response) -> dict:
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except (json.JSONDecodeError, AttributeError):
            detail = response.text
        raise ApiError(response.status_code, str(detail))
    return response.json()


def import_file(file: str, *, workspace: str, channel: str, tag_mode: str, mapping: dict | None,
                require_approval: bool, complete_local_phones: bool = False, poll_seconds: float = 2.0) -> dict:
    """Upload the file, then wait for its import to end; returns the import."""
    path = Path(file)
    if not path.is_file():
        raise ApiError(400, f"no such file: {file}")
    form = {"workspace": workspace, "channel": channel, "tag_mode": tag_mode,
            "require_approval": "true" if require_approval else "false",
            "complete_local_phones": "true" if complete_local_phones else "false"}
    if mapping:
        form["mapping"] = json.dumps(mapping, ensure_ascii=False)
    with _client() as client, path.open("rb") as content:
        record = _checked(client.post("/imports", data=form, files={"file": (path.name, content)}))
        while record["status"] not in FINISHED:
            time.sleep(poll_seconds)
            record = _checked(client.get(f"/imports/{record['id']}"))
    return record


def cancel(import_id: str) -> dict:
    with _client() as client:
        return _checked(client.post(f"/imports/{import_id}/cancel"))
