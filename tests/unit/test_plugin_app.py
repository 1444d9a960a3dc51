"""The plugin's FastAPI app without a running Airflow: how Airflow loads it, its OpenAPI
document, the offline docs page, the Contact imports page, and what needs no database."""
from __future__ import annotations

import datetime
import inspect
import json
import re
import sys

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from contact_import import context, imports
from contact_import.endpoints import API_PREFIX, API_URL_PREFIX, PAGE_PATH, PLUGIN_PREFIX
from tests.helpers import ROOT

PLUGINS = ROOT / "plugins"
sys.path.insert(0, str(PLUGINS))  # as Airflow does with its plugins folder

from contact_imports_api import auth, cdp, docs, schemas  # noqa: E402
from contact_imports_api.app import app  # noqa: E402
from contact_imports_api.routes import imports as routes_imports  # noqa: E402


@pytest.fixture
def client():
    """The app mounted where Airflow's API server mounts it."""
    server = FastAPI()
    server.mount(PLUGIN_PREFIX, app)
    yield TestClient(server)
    app.dependency_overrides.clear()


@pytest.mark.parametrize("syntax", ["glob", "regexp"])
def test_airflow_s_plugin_loader_sees_only_the_registration_not_the_package_s_modules(syntax):
    from airflow._shared.module_loading.file_discovery import find_path_from_directory

    found = {p for p in find_path_from_directory(str(PLUGINS), ".airflowignore", syntax) if p.endswith(".py")}
    assert found == {str(PLUGINS / "contact_imports_plugin.py")}


def test_the_plugin_registers_the_app_and_the_page():
    import contact_imports_plugin

    plugin = contact_imports_plugin.ContactImportsPlugin
    assert plugin.fastapi_apps[0]["app"] is app and plugin.fastapi_apps[0]["url_prefix"] == PLUGIN_PREFIX
    view = plugin.external_views[0]
    assert view["href"] == "/contact-imports/ui" and view["url_route"] == "contact-imports"
    # Airflow's sidebar gives a label about 7 characters of 10px before its ellipsis
    assert view["name"] == "Imports" and view["nav_top_level"] is True
    assert view["icon"].startswith("data:image/svg+xml;base64,") and view["icon_dark_mode"] != view["icon"]


def a_request(root_path: str = PLUGIN_PREFIX):
    """A request as the app sees it where Airflow's API server mounts it."""
    from starlette.requests import Request

    return Request({"type": "http", "method": "GET", "scheme": "http", "server": ("airflow.example", 8080),
                    "path": root_path + API_PREFIX + "/imports", "root_path": root_path, "query_string": b"",
                    "headers": [(b"host", b"airflow.example:8080")]})


def a_summary(**changes):
    now = datetime.datetime.now(datetime.timezone.utc)
    record = {"id": "3f1c0a52-0000-4000-8000-000000000000", "workspace": "demo", "channel": "line",
              "tag_mode": "append", "complete_local_phones": False, "status": "completed", "source": "api",
              "file_name": "a.csv",
              "encoding": "utf-8", "delimiter": ",", "total_rows": 3, "processed_rows": 3, "errors": 0,
              "warnings": {}, "preview": {"created": 3}, "result": {"created": 3}, "error_report": None,
              "data_docs": None, "message": None, "dag_run_id": "manual__1", "created_at": now,
              "started_at": now, "finished_at": now, **changes}
    return imports.summary(record)


def test_the_import_model_types_and_describes_every_key_the_api_answers():
    answer = routes_imports.present(a_request(), a_summary(), None)
    assert set(schemas.Import.model_fields) == set(answer)
    assert schemas.Import.model_validate(answer).id == answer["id"]

    spec = app.openapi()
    model = spec["components"]["schemas"]["Import"]
    assert set(model["properties"]) == set(answer) and set(model["required"]) == set(answer)
    for name, field in model["properties"].items():
        assert "type" in field or "anyOf" in field, name
    assert model["properties"]["status"]["enum"][0] == "waiting"
    assert model["properties"]["created_at"]["anyOf"][0]["format"] == "date-time"
    assert model["properties"]["message"]["anyOf"][0]["$ref"] == "#/components/schemas/Message"


def test_every_field_and_parameter_of_the_openapi_document_is_described():
    spec = app.openapi()
    undescribed = [f"{name}.{key}" for name, model in spec["components"]["schemas"].items()
                   for key, field in model.get("properties", {}).items() if not field.get("description")]
    undescribed += [f"{method} {path} {param['name']}" for path, operations in spec["paths"].items()
                    for method, operation in operations.items() for param in operation.get("parameters", [])
                    if not param.get("description")]
    undescribed += [f"{method} {path} {code}" for path, operations in spec["paths"].items()
                    for method, operation in operations.items() for code, answer in operation["responses"].items()
                    if not answer.get("description") or answer["description"] == "Validation Error"]
    assert undescribed == []
    assert {"HTTPValidationError", "ValidationError"}.isdisjoint(spec["components"]["schemas"])


def test_a_rejected_file_s_message_is_an_object_and_its_reports_are_urls_of_the_api():
    stored = "/srv/airflow/files/imports/3f1c0a52-0000-4000-8000-000000000000"
    answer = routes_imports.present(a_request(), a_summary(
        status="validation_failed", errors=3, result=None, error_report=f"{stored}/errors.csv",
        data_docs=f"{stored}/data_docs.html", message='{"invalid_email": 2, "invalid_user_id": 1}'), None)
    api = f"http://airflow.example:8080{API_URL_PREFIX}/imports/3f1c0a52-0000-4000-8000-000000000000"
    assert answer["error_report"] == f"{api}/errors.csv" and answer["data_docs"] == f"{api}/data_docs.html"
    assert answer["message"] == {"errors_by_code": {"invalid_email": 2, "invalid_user_id": 1},
                                 "text": "the file has 3 errors (invalid_email 2, invalid_user_id 1): nothing was"
                                         " imported; the rows are in the error report"}
    assert stored not in json.dumps(answer, default=str)
    under_base_url = routes_imports.present(a_request("/airflow" + PLUGIN_PREFIX), a_summary(
        status="validation_failed", error_report=f"{stored}/errors.csv"), None)
    assert under_base_url["error_report"].startswith(f"http://airflow.example:8080/airflow{API_URL_PREFIX}/")


def test_other_messages_are_their_sentence_and_the_paused_hint_is_only_for_a_waiting_run():
    cancelled = routes_imports.present(a_request(), a_summary(status="cancelled", message="cancelled through the API"),
                                       True)
    assert cancelled["message"] == {"text": "cancelled through the API", "errors_by_code": None}
    assert cancelled["dag_paused"] is None
    assert routes_imports.present(a_request(), a_summary(status="waiting"), True)["dag_paused"] is True
    assert routes_imports.present(a_request(), a_summary(status="waiting", dag_run_id=None), True)["dag_paused"] \
        is None  # the CLI's dag.test() runs whether the DAG is paused or not
    assert routes_imports.present(a_request(), a_summary(status="completed"), None)["message"] is None


def test_the_warnings_report_is_offered_while_it_is_the_import_s_own():
    for status, url in (("awaiting_approval", True), ("completed", True), ("importing", False),
                        ("validation_failed", False)):
        answer = routes_imports.present(a_request(), a_summary(status=status, warnings={"profile_shared": 2}), None)
        assert (answer["warnings_report"] or "").endswith("/warnings.csv") is url, status
    assert routes_imports.present(a_request(), a_summary(warnings={"profile_shared": 0}), None)[
        "warnings_report"] is None


def test_the_openapi_document_describes_each_route_s_answers():
    spec = app.openapi()
    paths = spec["paths"]
    api = "/api/v1"
    assert set(paths) == {f"{api}/imports", f"{api}/imports/{{import_id}}", f"{api}/imports/{{import_id}}/errors.csv",
                          f"{api}/imports/{{import_id}}/warnings.csv", f"{api}/imports/{{import_id}}/data_docs.html",
                          f"{api}/imports/{{import_id}}/cancel", f"{api}/templates/{{channel}}.csv",
                          f"{api}/workspaces"}

    def answer(path, method, code):
        return paths[path][method]["responses"][str(code)]

    ref = "#/components/schemas/"
    assert answer(f"{api}/imports", "post", 202)["content"]["application/json"]["schema"]["$ref"] == ref + "Import"
    assert answer(f"{api}/imports", "get", 200)["content"]["application/json"]["schema"]["$ref"] == ref + "ImportList"
    assert answer(f"{api}/imports/{{import_id}}", "get", 200)["content"]["application/json"]["schema"]["$ref"] \
        == ref + "Import"
    assert answer(f"{api}/imports/{{import_id}}/cancel", "post", 409)["content"]["application/json"]["schema"][
        "$ref"] == ref + "Error"
    assert "text/csv" in answer(f"{api}/templates/{{channel}}.csv", "get", 200)["content"]
    assert "text/csv" in answer(f"{api}/imports/{{import_id}}/warnings.csv", "get", 200)["content"]
    assert "text/html" in answer(f"{api}/imports/{{import_id}}/data_docs.html", "get", 200)["content"]
    form = paths[f"{api}/imports"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["properties"]["file"]["format"] == "binary" and "channel" in form["required"]
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    status_param = next(p for p in paths[f"{api}/imports"]["get"]["parameters"] if p["name"] == "status")
    assert "completed" in status_param["schema"]["anyOf"][0]["items"]["enum"]  # repeatable
    assert answer(f"{api}/workspaces", "get", 200)["content"]["application/json"]["schema"]["$ref"] \
        == ref + "WorkspaceList"


def test_routes_that_use_the_database_run_in_the_thread_pool():
    """Only the upload (its body streams in on the event loop) and the docs are coroutines."""
    coroutines = {route.path for route in app.routes
                  if hasattr(route, "endpoint") and inspect.iscoroutinefunction(route.endpoint)}
    assert coroutines <= {"/api/v1/imports", "/docs", "/docs/assets/{name}", "/openapi.json",
                          "/docs/oauth2-redirect"}
    upload = next(r for r in app.routes if getattr(r, "path", "") == "/api/v1/imports" and "POST" in r.methods)
    assert inspect.iscoroutinefunction(upload.endpoint)
    assert not inspect.iscoroutinefunction(cdp.cdp_context)
    assert not inspect.iscoroutinefunction(auth.reader) and not inspect.iscoroutinefunction(auth.writer)


def test_the_docs_page_loads_swagger_ui_from_this_app_not_a_cdn(client, tmp_path, monkeypatch):
    for name in (docs.JS, docs.CSS, docs.FAVICON):
        (tmp_path / name).write_text(f"/* {name} */")
    monkeypatch.setattr(docs, "assets_folder", lambda: tmp_path)
    page = client.get(f"{PLUGIN_PREFIX}/docs")
    assert page.status_code == 200
    assert "cdn.jsdelivr.net" not in page.text and "https://" not in page.text.replace("https://fastapi", "")
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    assert f"{PLUGIN_PREFIX}/docs/assets/swagger-ui-bundle.js" in urls
    assert f"{PLUGIN_PREFIX}/docs/assets/swagger-ui.css" in urls
    for url in urls:
        answer = client.get(url)
        assert answer.status_code == 200, url
    assert client.get(f"{PLUGIN_PREFIX}/docs/assets/swagger-ui-bundle.js").headers["content-type"].startswith(
        "text/javascript")
    assert client.get(f"{PLUGIN_PREFIX}/docs/assets/..%2Fsecrets").status_code == 404
    assert client.get(f"{PLUGIN_PREFIX}/docs/assets/redoc.standalone.js").status_code == 404
    assert f"'{PLUGIN_PREFIX}/openapi.json'" in page.text
    assert client.get(f"{PLUGIN_PREFIX}/openapi.json").json()["info"]["title"] == "Contact imports"


def test_without_an_assets_package_the_docs_page_still_answers(client, monkeypatch):
    monkeypatch.setattr(docs, "assets_folder", lambda: None)
    assert client.get(f"{PLUGIN_PREFIX}/docs").status_code == 200
    assert client.get(f"{PLUGIN_PREFIX}/docs/assets/swagger-ui.css").status_code == 404


def test_an_installed_fastapi_offline_provides_swagger_ui_5():
    pytest.importorskip(docs.PACKAGE)
    docs.assets_folder.cache_clear()
    folder = docs.assets_folder()
    assert folder is not None and (folder / docs.JS).stat().st_size > 100_000
    assert re.search(r'"5\.\d+\.\d+"', (folder / docs.JS).read_text(errors="replace"))  # renders OpenAPI 3.1


def test_the_page_is_served_with_the_library_s_names(client):
    page = client.get(PLUGIN_PREFIX + PAGE_PATH)
    assert page.status_code == 200 and "Contact imports" in page.text and "聯絡人匯入" in page.text
    assert "__" not in page.text.replace("__NAME__", "")
    assert f'const API = "{API_URL_PREFIX}";' in page.text and 'const DAG_ID = "contact_import";' in page.text
    assert 'const FINISHED = ["completed", "validation_failed", "cancelled", "failed"];' in page.text
    assert '<option value="whatsapp">whatsapp</option>' in page.text
    assert '<option value="overwrite">overwrite</option>' in page.text


def test_the_page_names_every_error_and_warning_code_in_english_and_chinese():
    """The list counts a rejected file's errors and an import's warnings by code, in short
    names of its own: one in each language for every code of the error table."""
    from contact_import import errors

    page = (PLUGINS / "contact_imports_page.html").read_text(encoding="utf-8")
    assert [code for code in errors.CODES if page.count(f"{code}: ") < 2] == []


def test_every_api_call_needs_a_caller(client):
    assert client.get(f"{API_URL_PREFIX}/imports").status_code == 401
    assert client.get(f"{API_URL_PREFIX}/workspaces").status_code == 401
    assert client.post(f"{API_URL_PREFIX}/imports/00000000-0000-0000-0000-000000000000/cancel").status_code == 401
    assert client.get(f"{API_URL_PREFIX}/templates/line.csv",
                      headers={"Authorization": "Bearer "}).status_code == 401


def test_no_cdp_connection_answers_503_with_one_line(client, monkeypatch):
    message = context.no_database_message()

    def no_connection():
        raise context.NoDatabase(message)

    monkeypatch.setattr(cdp, "_build", no_connection)
    cdp.forget()
    app.dependency_overrides[auth.reader] = lambda: auth.Caller(user=None, token="t")
    answer = client.get(f"{API_URL_PREFIX}/imports")
    assert answer.status_code == 503 and answer.json() == {"detail": message}
    assert "\n" not in message and "cdp_default" in message
    cdp.forget()


def test_the_context_is_built_once_per_process(monkeypatch):
    built = []
    monkeypatch.setattr(cdp, "_build", lambda: built.append(1) or "the context")
    cdp.forget()
    assert cdp.load() == cdp.load() == "the context" and built == [1]
    cdp.forget()


def test_a_trigger_repeated_after_airflow_failed_starts_one_run_named_after_the_import(monkeypatch):
    """SQLite under airflow standalone refuses a write now and then (Airflow answers 500): the
    trigger is repeated with the same run id, and a run that did start is found (409)."""
    import json

    import httpx

    from contact_imports_api import airflow_client

    seen = []

    def airflow(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path, json.loads(request.content) if request.content else None))
        if request.method == "POST":
            first = len(seen) == 1
            return httpx.Response(500 if first else 409, json={"detail": "busy" if first else "exists"})
        return httpx.Response(200, json={"dag_run_id": "upload__abc", "state": "queued"})

    real = httpx.Client
    monkeypatch.setattr(airflow_client.httpx, "Client", lambda **kwargs: real(transport=httpx.MockTransport(airflow),
                                                                              **kwargs))
    monkeypatch.setattr(airflow_client.time, "sleep", lambda seconds: None)
    run = airflow_client.trigger("http://airflow", auth.Caller(user=None, token="t"), {"import_id": "abc"})
    assert run["dag_run_id"] == "upload__abc"
    posts = [body for method, _, body in seen if method == "POST"]
    assert len(posts) == 2 and {body["dag_run_id"] for body in posts} == {"upload__abc"}
    assert seen[-1][:2] == ("GET", "/api/v2/dags/contact_import/dagRuns/upload__abc")
