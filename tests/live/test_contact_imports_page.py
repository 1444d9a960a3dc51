"""The Contact imports page (in Airflow's UI) in headless Chromium against the
shared `airflow standalone`: a data-team user signs in to Airflow, opens the page from
Airflow's menu, downloads a sample file, uploads a bad file and reads its errors, uploads
a good one that needs approval, cancels another that waits behind it, approves the first
on Airflow's own Required Actions screen and sees it complete with its counts. Then the
list as a team reads it: filters, pages, the running step, counts and warnings in English
and Traditional Chinese, Airflow's dark mode, a phone's width.

Debian's chromium (installed by `make test`) driven by Playwright; no browser download.
Screenshots of each step (1400x900, and 390x844 for a phone) go to
test-artifacts/contact_imports_page/ (CONTACT_IMPORT_TEST_ARTIFACTS); the test prints the folder.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
import uuid
from pathlib import Path

import pytest
from psycopg2 import sql

from contact_import import db, imports, statuses, workspaces
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


@pytest.fixture(scope="module", autouse=True)
def artifacts():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    yield
    print(f"\nscreenshots of the Contact imports page: {ARTIFACTS}")


@pytest.fixture
def page(browser, airflow, request):
    context = browser.new_context(base_url=airflow.base_url, viewport={"width": 1400, "height": 900},
                                  accept_downloads=True, locale="en-US")
    context.set_default_timeout(60_000)
    tab = context.new_page()
    console: list[str] = []
    tab.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    tab.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
    yield tab
    (ARTIFACTS / f"console-{request.node.name[:60]}.log").write_text("\n".join(console) + "\n")
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
    """An import in the list: its row, and the full-width row below it (errors, changes)."""
    return frame.locator("#imports tbody.import", has_text=file_name)


def upload_from_the_page(frame, file: Path, *switches: str):
    """Choose the file, switch on `switches` (the form's checkbox names), press Import; the
    import's rows in the list."""
    frame.locator("input[type=file]").set_input_files(file)
    for name in switches:
        frame.locator(f"input[name={name}]").check()
    frame.get_by_role("button", name="Import").click()
    return row_of(frame, file.name)


def sign_in_and_open_the_page(page):
    """Sign in to Airflow and open the page from Airflow's own menu; the page's frame."""
    from playwright.sync_api import expect

    page.goto("/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Imports", exact=True).click()
    expect(page).to_have_url(re.compile(r"/plugin/contact-imports"))
    frame = page.frame_locator("iframe[title='Imports']")
    expect(frame.get_by_role("heading", name="Contact imports")).to_be_visible()
    return frame


def cut_off(frame) -> list[str]:
    """The list's cells and headers whose text does not fit (clipped, or spilling out)."""
    return frame.locator("#imports").evaluate("""table => [...table.querySelectorAll(
        ':scope > thead th, tr.main > td, tr.main > td *')]
        .filter((el) => el.offsetParent !== null && el.scrollWidth > el.clientWidth + 1
                && getComputedStyle(el).overflowX !== 'auto')
        .map((el) => `${el.className || el.tagName}: ${el.textContent.slice(0, 40)}`)""")


def pinned(frame, row):
    """The same import by its id, whatever language its text is in."""
    return frame.locator(f"tbody.import[data-id='{row.get_attribute('data-id')}']")


def column_edges(frame) -> list[float]:
    return frame.locator("#imports > thead th").evaluate_all("ths => ths.map((th) => th.getBoundingClientRect().left)")


def test_a_user_uploads_reads_errors_approves_in_airflow_and_cancels_from_the_page(
        airflow, browser_workspace, page, tmp_path):
    from playwright.sync_api import expect

    run = uuid.uuid4().hex[:6]
    before = contacts_in(airflow, WORKSPACE)

    # Sign in to Airflow and open the page from Airflow's own menu; the workspace is chosen.
    frame = sign_in_and_open_the_page(page)
    frame.locator("#workspace").select_option(WORKSPACE)

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
    bad_row = upload_from_the_page(frame, bad)
    expect(bad_row.locator(".status")).to_have_text("validation failed", timeout=STEP_TIMEOUT_MS)
    expect(bad_row.locator(".reason")).to_contain_text("2 errors: ")
    errors = bad_row.locator("table.error-list tbody tr")
    expect(errors).to_have_count(2)
    # the error table opens below its import, as wide as the list
    main, box = bad_row.locator("tr.main").bounding_box(), bad_row.locator(".errors-box").bounding_box()
    assert box["y"] >= main["y"] + main["height"] - 1 and box["width"] >= 0.95 * main["width"], (main, box)
    edges = column_edges(frame)
    expect(errors.filter(has_text="invalid_email")).to_contain_text("not-an-email")
    expect(errors.filter(has_text="invalid_user_id").locator("td").first).to_have_text("2")
    expect(bad_row.locator("a.report")).to_have_attribute("href", re.compile(r"/errors\.csv$"))
    shot(page, "03-bad-file-errors")
    assert contacts_in(airflow, WORKSPACE) == before

    # A good file that needs approval waits in Airflow's approval step with its preview.
    good = contacts_file(tmp_path, f"good-{run}.csv", 300_000, 5)
    good_row = upload_from_the_page(frame, good, "require_approval")
    expect(good_row.locator(".status")).to_have_text("awaiting approval", timeout=STEP_TIMEOUT_MS)
    expect(good_row.locator(".cell-counts")).to_contain_text("Preview: nothing is written until approved")
    expect(good_row.locator(".cell-counts")).to_contain_text("5 contacts to create")
    expect(good_row.locator(".by")).to_have_text("admin · upload")
    expect(good_row.locator("a.dag-run")).to_have_attribute("href", re.compile(r"^/dags/contact_import/runs/"))
    # beside the link to approve it, the changes it will make: 5 new contacts, each with its tag
    changes = good_row.locator(".preview-sample tbody tr")
    expect(changes).to_have_count(10)
    expect(changes.first).to_contain_text(line_id(300_000))
    expect(changes.first).to_contain_text("new contact")
    expect(changes.nth(1)).to_contain_text("+VIP")
    expect(frame.locator("input[name=require_approval]")).not_to_be_checked()  # not carried to the next file

    # Another upload waits behind it in Airflow's queue; cancelled from the list, it writes nothing.
    later = contacts_file(tmp_path, f"later-{run}.csv", 310_000, 3)
    later_row = upload_from_the_page(frame, later)
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
        expect(page.get_by_text("contacts to create: 5", exact=True)).to_be_visible()
        expect(page.get_by_role("link", name="Open the Contact imports page")).to_be_visible()
        shot(page, "06-airflow-required-action")
        page.get_by_role("button", name="Approve").click()
        clicks.append(1)

    answer_approval_step(airflow, api, record["dag_run_id"], approve_on_airflow_s_screen)
    shot(page, "07-approved")

    # Back on the page: completed, with its counts and full progress.
    page.get_by_role("link", name="Imports", exact=True).click()
    frame = page.frame_locator("iframe[title='Imports']")
    good_row = row_of(frame, good.name)
    expect(good_row.locator(".status")).to_have_text("completed", timeout=STEP_TIMEOUT_MS)
    expect(good_row).to_contain_text("5 of 5 rows")
    expect(good_row.locator(".cell-counts")).to_contain_text("5 contacts created")
    expect(good_row.locator(".cell-counts")).not_to_contain_text("Preview")
    expect(good_row.locator(".cell-progress .line2")).to_contain_text(re.compile(r"took \d"))
    expect(row_of(frame, later.name).locator(".status")).to_have_text("cancelled")
    expect(row_of(frame, later.name).locator(".reason")).to_have_text("cancelled through the API")
    assert column_edges(frame) == edges  # the columns stayed where they were through every refresh
    assert cut_off(frame) == []
    shot(page, "08-completed")
    assert contacts_in(airflow, WORKSPACE) == before + 5

    # Local phone numbers: with the switch on they are completed with the workspace's region
    # (TW), and the list says how many, with the report of which.
    local = tmp_path / f"local-{run}.csv"
    local.write_text(LINE_HEADER + f"\n{line_id(320_000)},Local,,0912 345 678,,,,,,,\n", encoding="utf-8")
    local_row = upload_from_the_page(frame, local, "complete_local_phones")
    expect(local_row.locator(".status")).to_have_text("completed", timeout=STEP_TIMEOUT_MS)
    expect(frame.locator("#message")).to_be_empty()  # "uploaded, waits for its run" no longer holds
    expect(local_row.locator(".meta")).to_contain_text("local phones completed")
    expect(local_row.locator("ul.warnings")).to_have_text("1 local phone number completed")
    report = client_for(airflow, "admin").get(local_row.locator("a.warnings-report").get_attribute("href"))
    assert report.status_code == 200 and "0912 345 678" in report.text and "phone_completed" in report.text
    shot(page, "09-local-phones-completed")


LIST_WORKSPACE = "browser-list"
OLD_ONES = 24  # with the four below, two pages of 20


def _record(conn, workspace_id: int, file_name: str, minutes_ago: int, source: str = "api") -> str:
    import_id = imports.create(conn, workspace_id=workspace_id, channel="line", tag_mode="append", source=source,
                               file_uri=f"/nowhere/{file_name}", file_name=file_name)
    imports.set_fields(conn, import_id, created_at=sql.SQL(f"now() - interval '{minutes_ago} minutes'"))
    return import_id


@pytest.fixture(scope="module")
def seeded_list(airflow):
    """Imports recorded straight in the CDP as the pipeline leaves them (without DAG runs):
    ended ones to page through, a file rejected with its errors by code, a large file
    completed from Airflow's trigger form after an earlier try of the same name, with warnings,
    and one being checked, its progress mid-way."""
    with db.transaction(airflow.cdp_url) as conn:
        ws = workspaces.apply(conn, {"workspace": LIST_WORKSPACE, "name": "Browser list", "omo": False})
        for n in range(OLD_ONES):
            statuses.change(conn, _record(conn, ws.id, f"old-{n:02}.csv", 60 + n), statuses.CANCELLED,
                            message="cancelled through the API")
        first_try = _record(conn, ws.id, "big.csv", 30, source="ui")
        statuses.change(conn, first_try, statuses.FAILED, message="upsert_contacts: the worker was lost")
        big = _record(conn, ws.id, "big.csv", 20, source="ui")
        statuses.change(conn, big, statuses.VALIDATING)
        statuses.change(conn, big, statuses.IMPORTING)
        statuses.change(conn, big, statuses.COMPLETED, total_rows=152_645, processed_rows=152_645,
                        result={"created": 152_000, "updated": 644, "unchanged": 1, "customers_created": 151_000,
                                "tags_added": 1, "tags_removed": 0, "bound": 0, "unbound": 0},
                        warnings={"profile_shared": 1, "identity_conflict": 2},
                        started_at=sql.SQL("now() - interval '75 seconds'"))
        rejected = _record(conn, ws.id, "rejected.csv", 10)
        statuses.change(conn, rejected, statuses.VALIDATING)
        statuses.change(conn, rejected, statuses.VALIDATION_FAILED, total_rows=12, errors=3,
                        message=json.dumps({"invalid_email": 2, "invalid_phone": 1}))
        running = _record(conn, ws.id, "running.csv", 1)
        statuses.change(conn, running, statuses.VALIDATING, total_rows=152_645)
        imports.start_step(conn, running, imports.CHECKING)
        imports.set_fields(conn, running, step_started_at=sql.SQL("clock_timestamp() - interval '10 seconds'"))
        imports.record_progress(conn, running, imports.CHECKING, 50_000)
    yield LIST_WORKSPACE
    with db.transaction(airflow.cdp_url) as conn:
        statuses.end(conn, running, statuses.CANCELLED, "the test ended")


def test_the_list_reads_well_pages_and_filters_in_english_and_chinese_light_dark_and_on_a_phone(
        airflow, browser, seeded_list, page):
    from playwright.sync_api import expect

    frame = sign_in_and_open_the_page(page)
    # Airflow's menu shows the page's label whole, not cut short with an ellipsis
    label = page.locator("[data-testid=nav-sidebar] a[aria-label='Imports']")
    assert label.evaluate("""link => [...link.querySelectorAll('*')].filter((el) => el.textContent === 'Imports'
        && !el.children.length).every((el) => el.scrollWidth <= el.clientWidth)"""), label.inner_html()

    # Workspaces are chosen from a drop-down of the ones there are.
    options = frame.locator("#workspace option")
    expect(options.filter(has_text="Browser list (browser-list)")).to_have_count(1)
    expect(options.filter(has_text="Demo Shop (demo)")).to_have_count(1)
    frame.locator("#workspace").select_option(LIST_WORKSPACE)
    expect(frame.locator("#template")).to_have_attribute("href", re.compile(r"workspace=browser-list"))

    # Filtered by workspace, newest first, 20 a page.
    frame.locator("#filter-workspace").select_option(LIST_WORKSPACE)
    total = OLD_ONES + 4
    expect(frame.locator("#page-info")).to_have_text(f"1–20 of {total}")
    expect(frame.locator("#imports tbody.import")).to_have_count(20)
    expect(frame.locator("#imports tbody.import").first).to_contain_text("running.csv")
    expect(frame.locator("#newer")).to_be_disabled()
    frame.locator("#older").click()
    expect(frame.locator("#page-info")).to_have_text(f"21–{total} of {total}")
    expect(frame.locator("#imports tbody.import")).to_have_count(total - 20)
    expect(frame.locator("#imports tbody.import").last).to_contain_text(f"old-{OLD_ONES - 1:02}.csv")
    expect(frame.locator("#older")).to_be_disabled()
    frame.locator("#newer").click()
    expect(frame.locator("#page-info")).to_have_text(f"1–20 of {total}")

    # Each import: when, by whom or from where, how long, its id, which upload of its name.
    big = pinned(frame, row_of(frame, "big.csv").filter(has_text="completed"))
    expect(big.locator(".by")).to_have_text("Airflow trigger form")
    expect(big.locator(".repeat")).to_have_text("2nd upload of a file with this name")
    expect(big.locator(".import-id")).to_have_text(re.compile(r"^[0-9a-f-]{36}$"))
    expect(big.locator(".cell-progress")).to_contain_text("152,645 of 152,645 rows")
    expect(big.locator(".cell-progress")).to_contain_text("took 1 min 15 s")
    counts = big.locator(".counts li")
    expect(counts).to_have_text(["152,000 contacts created", "644 contacts updated", "1 contact unchanged",
                                 "151,000 customers created", "1 tag added"])
    expect(big.locator(".warnings li")).to_have_text(["1 row shares a customer profile",
                                                      "2 contacts kept with their customer (identity conflict)"])
    expect(row_of(frame, "big.csv").filter(has_text="failed").locator(".reason")).to_have_text(
        "upsert_contacts: the worker was lost")
    rejected = pinned(frame, row_of(frame, "rejected.csv"))
    expect(rejected.locator(".reason")).to_have_text("3 errors: invalid email 2, invalid phone 1")
    expect(rejected.locator(".cell-counts")).to_have_text("—")
    running = pinned(frame, row_of(frame, "running.csv"))
    expect(running.locator(".step")).to_have_text("Checking the rows")
    expect(running.locator(".rows")).to_have_text("50,000 of 152,645 rows")
    expect(running.locator(".cell-progress .line2")).to_contain_text(re.compile(r"[\d,]+ rows/s · about \d"))
    assert cut_off(frame) == []
    shot(page, "10-list")

    # Filtered by status: one status, or every import that has not ended.
    frame.locator("#filter-status").select_option("validation_failed")
    expect(frame.locator("#imports tbody.import")).to_have_count(1)
    expect(frame.locator("#page-info")).to_have_text("1–1 of 1")
    frame.locator("#filter-status").select_option("active")
    expect(frame.locator("#imports tbody.import")).to_have_count(1)
    expect(frame.locator("#imports tbody.import")).to_contain_text("running.csv")
    frame.locator("#filter-status").select_option("")

    # Traditional Chinese everywhere: statuses, counts, warnings, codes, options; statuses on one line.
    frame.locator("#lang").select_option("zh-TW")
    expect(big.locator(".status")).to_have_text("已完成")
    expect(counts).to_have_text(["新增 152,000 位聯絡人", "更新 644 位聯絡人", "1 位聯絡人未變更", "新增 151,000 位顧客",
                                 "加上 1 個標籤"])
    expect(big.locator(".warnings li").first).to_have_text("1 列與其他列共用顧客檔案")
    expect(big.locator(".by")).to_have_text("Airflow 觸發表單")
    expect(rejected.locator(".reason")).to_have_text("3 個錯誤：電子郵件無效 2、電話無效 1")
    expect(running.locator(".step")).to_have_text("檢查資料列")
    expect(frame.locator("#tag_mode option[value=append]")).to_have_text("附加（加上標籤）")
    expect(frame.locator("#channel option[value=wechat]")).to_have_text("WeChat（微信）")
    expect(frame.locator("#filter-status option[value=awaiting_approval]")).to_have_text("等待核准")
    expect(frame.locator("#page-info")).to_have_text(f"第 1–20 筆，共 {total} 筆")
    heights = frame.locator("#imports .badge").evaluate_all("bs => bs.map((b) => b.getBoundingClientRect().height)")
    assert heights and max(heights) < 30, heights  # one line each
    assert cut_off(frame) == []
    shot(page, "11-list-zh-TW")
    frame.locator("#lang").select_option("en")

    # Airflow in dark mode: the page is dark too.
    page.evaluate("localStorage.setItem('theme', 'dark')")
    page.reload()
    frame = page.frame_locator("iframe[title='Imports']")
    expect(page.locator("html")).to_have_class(re.compile(r"\bdark\b"))
    expect(frame.locator("html")).to_have_class(re.compile(r"\bdark\b"))
    background = frame.locator("html").evaluate("""html => {  // as sRGB, whatever colour space CSS gave
        const c = document.createElement('canvas').getContext('2d');
        c.fillStyle = getComputedStyle(html).backgroundColor; c.fillRect(0, 0, 1, 1);
        return [...c.getImageData(0, 0, 1, 1).data.slice(0, 3)]; }""")
    assert max(background) < 80, background
    frame.locator("#filter-workspace").select_option(LIST_WORKSPACE)
    expect(frame.locator("#imports tbody.import")).to_have_count(20)
    shot(page, "12-list-dark")
    page.evaluate("localStorage.setItem('theme', 'light')")

    # A phone: every import a card, nothing wider than the screen.
    phone = browser.new_context(base_url=airflow.base_url, viewport={"width": 390, "height": 844}, locale="en-US",
                                device_scale_factor=2, is_mobile=True, has_touch=True)
    try:
        small = phone.new_page()
        frame = sign_in_and_open_the_page(small)
        frame.locator("#filter-workspace").select_option(LIST_WORKSPACE)
        expect(frame.locator("#imports tbody.import")).to_have_count(20)
        widths = frame.locator("html").evaluate("html => [html.scrollWidth, html.clientWidth]")
        assert widths[0] <= widths[1], widths
        assert frame.locator("#imports thead").is_hidden()
        small.screenshot(path=ARTIFACTS / "13-phone.png")
        frame.locator("#imports tbody.import").first.scroll_into_view_if_needed()
        small.screenshot(path=ARTIFACTS / "14-phone-list.png")
        frame.locator("#lang").select_option("zh-TW")
        expect(frame.locator("#page-info")).to_have_text(f"第 1–20 筆，共 {total} 筆")
        widths = frame.locator("html").evaluate("html => [html.scrollWidth, html.clientWidth]")
        assert widths[0] <= widths[1], widths
        frame.locator("#imports tbody.import").nth(1).scroll_into_view_if_needed()
        small.screenshot(path=ARTIFACTS / "15-phone-zh-TW.png")
    finally:
        phone.close()
