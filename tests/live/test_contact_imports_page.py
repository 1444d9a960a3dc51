"""The Contact imports page (in Airflow's UI) in headless Chromium against the
shared `airflow standalone`: a data-team user signs in to Airflow, opens the page from
Airflow's menu, downloads a sample file, uploads a bad file and reads its errors, uploads
a good one that needs approval, cancels another that waits behind it, approves the first
on Airflow's own Required Actions screen and sees it complete with its counts.

Debian's chromium (installed by `make test`) driven by Playwright; no browser download.
Screenshots of each step go to test-artifacts/contact_imports_page/ (CONTACT_IMPORT_TEST_ARTIFACTS).
"""
from __future__ import annotations

import csv
import io
import os
import re
import uuid
from pathlib import Path

import pytest

from contact_import import db, workspaces
from contact_import.statuses import FINISHED
from tests.helpers import EXAMPLES, LINE_HEADER, ROOT, line_id
from tests.live.airflow_server import API, PASSWORD, RUN_TIMEOUT, answer_approval_step, client_for, contacts_in

pytestmark = pytest.mark.live

CHROMIUM = Path(os.environ.get("CONTACT_IMPORT_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(os.environ.get("CONTACT_IMPORT_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "contact_imports_page"
WORKSPACE = "browser"
STEP_TIMEOUT_MS = RUN_TIMEOUT * 1000


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium (scripts/ensure_chromium.sh),"
                    " or set CONTACT_IMPORT_CHROMIUM to a Chromium binary")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield instance
        instance.close()


@pytest.fixture
def page(browser, airflow, request):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    context = browser.new_context(base_url=airflow.base_url, viewport={"width": 1400, "height": 900},
                                  accept_downloads=True, locale="en-US")
    context.set_default_timeout(60_000)
    tab = context.new_page()
    console: list[str] = []
    tab.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    tab.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
    yield tab
    (ARTIFACTS / "console.log").write_text("\n".join(console) + "\n")
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        tab.screenshot(path=ARTIFACTS / "failure.png", full_page=True)
    context.close()
    assert not [line for line in console if line.startswith("pageerror")], console


@pytest.fixture(scope="module")
def browser_workspace(airflow):
    spec = workspaces.load_file(EXAMPLES / "demo-workspace.yaml")
    spec["workspace"], spec["name"] = WORKSPACE, "Browser test"
    with db.transaction(airflow.cdp_url) as conn:
        workspaces.apply(conn, spec)
    yield WORKSPACE
    # A failed run must not leave a run holding Airflow's queue for the other live tests.
    api = client_for(airflow, "admin")
    for item in api.get(f"{API}/imports", params={"workspace": WORKSPACE}).json()["imports"]:
        if item["status"] not in FINISHED:
            api.post(f"{API}/imports/{item['id']}/cancel")


def shot(page, name: str) -> None:
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)


def contacts_file(tmp_path: Path, name: str, first: int, rows: int) -> Path:
    path = tmp_path / name
    lines = [LINE_HEADER] + [f"{line_id(first + n)},Browser {n},b{first + n}@example.com,,,,VIP,,,,{n}"
                             for n in range(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def row_of(frame, file_name: str):
    return frame.locator("#imports tr", has_text=file_name)


def test_a_user_uploads_reads_errors_approves_in_airflow_and_cancels_from_the_page(
        airflow, browser_workspace, page, tmp_path):
    from playwright.sync_api import expect

    run = uuid.uuid4().hex[:6]
    before = contacts_in(airflow, WORKSPACE)

    # Sign in to Airflow and open the page from Airflow's own menu.
    page.goto("/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Contact imports").first.click()
    expect(page).to_have_url(re.compile(r"/plugin/contact-imports"))
    frame = page.frame_locator("iframe[title='Contact imports']")
    expect(frame.get_by_role("heading", name="Contact imports")).to_be_visible()
    frame.locator("input[name=workspace]").fill(WORKSPACE)

    # Traditional Chinese and back.
    frame.locator("#lang").select_option("zh-TW")
    expect(frame.get_by_role("heading", name="聯絡人匯入")).to_be_visible()
    shot(page, "01-page-zh-TW")
    frame.locator("#lang").select_option("en")

    # The sample file of the chosen channel and tag mode.
    frame.locator("#channel").select_option("whatsapp")
    frame.locator("#tag_mode").select_option("overwrite")
    with page.expect_download() as download:
        frame.locator("#template").click()
    assert download.value.suggested_filename == "whatsapp-overwrite.csv"
    sample = list(csv.reader(io.StringIO(Path(download.value.path()).read_text(encoding="utf-8-sig"))))
    assert sample[0][0] == "WhatsApp User ID" and "Binding Teammate" in sample[0] and len(sample) > 1
    frame.locator("#channel").select_option("line")
    frame.locator("#tag_mode").select_option("append")
    shot(page, "02-page")

    # A bad file: its errors show on the page, row by row; nothing is written.
    bad = tmp_path / f"bad-{run}.csv"
    bad.write_text(LINE_HEADER + "\nUbad,Bad,not-an-email,,,,,,,,\n" + f"{line_id(7)},Fine,,,,,,,,,\n")
    frame.locator("input[type=file]").set_input_files(bad)
    frame.get_by_role("button", name="Import").click()
    bad_row = row_of(frame, bad.name)
    expect(bad_row.locator(".status")).to_have_text("validation failed", timeout=STEP_TIMEOUT_MS)
    errors = bad_row.locator("table.error-list tbody tr")
    expect(errors).to_have_count(2)
    expect(errors.filter(has_text="invalid_email")).to_contain_text("not-an-email")
    expect(errors.filter(has_text="invalid_user_id").locator("td").first).to_have_text("2")
    expect(bad_row.locator("a.report")).to_have_attribute("href", re.compile(r"/errors\.csv$"))
    shot(page, "03-bad-file-errors")
    assert contacts_in(airflow, WORKSPACE) == before

    # A good file that needs approval waits in Airflow's approval step with its preview.
    good = contacts_file(tmp_path, f"good-{run}.csv", 300_000, 5)
    frame.locator("input[type=file]").set_input_files(good)
    frame.locator("input[name=require_approval]").check()
    frame.get_by_role("button", name="Import").click()
    good_row = row_of(frame, good.name)
    expect(good_row.locator(".status")).to_have_text("awaiting approval", timeout=STEP_TIMEOUT_MS)
    expect(good_row).to_contain_text("created 5")

    # Another upload waits behind it in Airflow's queue; cancelled from the list, it writes nothing.
    later = contacts_file(tmp_path, f"later-{run}.csv", 310_000, 3)
    frame.locator("input[name=require_approval]").uncheck()
    frame.locator("input[type=file]").set_input_files(later)
    frame.get_by_role("button", name="Import").click()
    later_row = row_of(frame, later.name)
    expect(later_row.locator(".status")).to_have_text("waiting")
    shot(page, "04-awaiting-approval-and-waiting")
    later_row.get_by_role("button", name="Cancel").click()
    expect(later_row.locator(".status")).to_have_text("cancelled")
    expect(later_row.get_by_role("button", name="Cancel")).to_have_count(0)
    shot(page, "05-cancelled")

    # Approve on Airflow's own screen for the approval step, reached from the page.
    api = client_for(airflow, "admin")
    record = next(item for item in api.get(f"{API}/imports",
                                           params={"workspace": WORKSPACE}).json()["imports"]
                  if item["file_name"] == good.name)
    clicks = []

    def approve_on_airflow_s_screen():
        if clicks:  # Airflow asked again (see answer_approval_step): the person reloads and answers again
            page.reload()
        else:
            good_row.locator("a.review").click()
        expect(page).to_have_url(re.compile(r"/tasks/approve/required_actions$"))
        expect(page.get_by_text("created: 5", exact=True)).to_be_visible()
        shot(page, "06-airflow-required-action")
        page.get_by_role("button", name="Approve").click()
        clicks.append(1)

    answer_approval_step(airflow, api, record["dag_run_id"], approve_on_airflow_s_screen)
    shot(page, "07-approved")

    # Back on the page: completed, with its counts and full progress.
    page.get_by_role("link", name="Contact imports").first.click()
    frame = page.frame_locator("iframe[title='Contact imports']")
    good_row = row_of(frame, good.name)
    expect(good_row.locator(".status")).to_have_text("completed", timeout=STEP_TIMEOUT_MS)
    expect(good_row).to_contain_text("5/5")
    expect(good_row).to_contain_text("created 5")
    expect(row_of(frame, later.name).locator(".status")).to_have_text("cancelled")
    shot(page, "08-completed")
    assert contacts_in(airflow, WORKSPACE) == before + 5
