"""The upload route as a data team meets it (issue 18, items 2 and 5), against a real CDP
database: a file the DAG would reject for its first bytes or its header is refused at
once with the DAG's codes and messages, and compressed files (.gz, a .zip holding one
file) are unpacked as they arrive, within limits on both sizes. A refused upload leaves
nothing: no stored file, no import record, no DAG run."""
from __future__ import annotations

import csv
import gzip
import hashlib
import io
import zipfile
import zlib

import pytest

from contact_import import config, db, intake
from tests.helpers import LINE_HEADER, csv_bytes, ctx, run_recorded, upload
from tests.integration.test_plugin_routes import API, airflow, api, stored_folders  # noqa: F401 (fixtures)

WHATSAPP_FILE = b"WhatsApp User ID,Name,Email\n886911223344,Amy,amy@example.com\n"


def import_count(cdp_url) -> int:
    with db.transaction(cdp_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM cdp.imports")
        return cur.fetchone()[0]


@pytest.fixture
def nothing_left(airflow, cdp_url):  # noqa: F811
    """Asserts, after the test, that its refused uploads left nothing behind."""
    before = stored_folders(cdp_url)
    yield
    assert stored_folders(cdp_url) == before
    assert import_count(cdp_url) == 0 and airflow.triggered == []


def refused(response, status=422) -> list[dict]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["detail"] == "\n".join(e["message"] for e in body["errors"])
    return body["errors"]


def zipped(*members: tuple[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members:
            archive.writestr(name, content)
    return out.getvalue()


def workbook(rows: list[list]) -> bytes:
    import openpyxl

    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def stored_bytes(conf: dict) -> bytes:
    with open(conf["file"], "rb") as f:
        return f.read()


# ---------------------------------------------------------------- item 2: checked at upload

def test_a_file_of_another_channel_is_named_at_once_in_the_caller_s_language(api, nothing_left):
    errors = refused(upload(api, WHATSAPP_FILE, name="wa.csv", channel="line"))
    assert [e["code"] for e in errors] == ["channel_mismatch", "unknown_column", "missing_required_column"]
    assert errors[0]["message"].startswith("This looks like a WhatsApp file")
    assert errors[0]["column"] == "WhatsApp User ID" and errors[0]["row"] == 1
    in_chinese = api.post(f"{API}/imports", headers={"Accept-Language": "zh-TW,zh;q=0.9"},
                          data={"workspace": "demo", "channel": "line"},
                          files={"file": ("wa.csv", io.BytesIO(WHATSAPP_FILE), "text/csv")})
    assert in_chinese.headers["content-language"] == "zh-TW"
    assert refused(in_chinese)[0]["message"].startswith("這看起來是 WhatsApp 的檔案")


@pytest.mark.parametrize("content, name, codes", [
    (b"", "empty.csv", ["file_empty"]),
    (LINE_HEADER.encode() + b"\n", "header-only.csv", ["file_empty"]),
    (b"Dear team,\nplease find the contacts below.\n", "notes.txt", ["unknown_column", "missing_required_column"]),
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "contacts.pdf", ["not_a_table"]),
    (bytes(range(256)) * 8192, "export.dat", ["not_a_table"]),  # 2 MiB of binary without a line end
    (b"LINE User ID,Name\n\"U4af4980629a2b2c3d4e5f60718293a4b,never closed\n", "open-quote.csv", ["malformed_csv"]),
])
def test_what_the_first_bytes_decide_is_refused_with_the_dag_s_code(api, nothing_left, content, name, codes):
    assert [e["code"] for e in refused(upload(api, content, name=name))] == codes


def test_the_header_s_errors_are_the_dag_s_own_codes_and_messages(api, airflow, cdp_url, tmp_path):  # noqa: F811
    content = b"LINE ID,Name,Emial\nU4af4980629a2b2c3d4e5f60718293a4b,Amy,amy@example.com\n"
    at_upload = refused(upload(api, content))
    assert import_count(cdp_url) == 0
    # the same file through the DAG's stages (the trigger form's way in, which has no upload step)
    path = tmp_path / "same.csv"
    path.write_bytes(content)
    record = run_recorded(cdp_url, intake.create_import(ctx(cdp_url), workspace="demo", channel="line",
                                                        tag_mode="append", file=str(path)))
    assert record["status"] == "validation_failed"
    with ctx(cdp_url).storage.path(record["error_report"]).open("r", encoding="utf-8-sig") as f:
        in_report = list(csv.DictReader(f))
    assert sorted((e["column"], e["code"], e["message"]) for e in at_upload) == \
        sorted((r["column"], r["code"], r["message"]) for r in in_report)
    assert any("did you mean 'Email'" in e["message"] for e in at_upload)


def test_a_mapping_that_fixes_the_header_is_taken(api, airflow):  # noqa: F811
    content = csv_bytes(2).replace(b"LINE User ID", b"uid", 1)
    assert upload(api, content).status_code == 422
    accepted = upload(api, content, mapping='{"uid": "LINE User ID"}')
    assert accepted.status_code == 202, accepted.text
    assert len(airflow.triggered) == 1


def test_an_unknown_workspace_is_refused_before_the_file_is_stored(api, nothing_left, monkeypatch):
    opened = []
    real = intake.upload_path
    monkeypatch.setattr(intake, "upload_path", lambda *args: opened.append(args) or real(*args))
    answer = upload(api, csv_bytes(1), workspace="nope")
    assert answer.status_code == 422 and "nope" in answer.json()["detail"]
    assert upload(api, csv_bytes(1), channel="myspace").status_code == 422
    assert opened == []  # the fields came first: the file part was never written anywhere


def big_line_file(rows: int, header: str = LINE_HEADER) -> bytes:
    return csv_bytes(rows).replace(LINE_HEADER.encode(), header.encode(), 1)


def test_a_file_larger_than_the_sample_is_checked_on_its_first_lines(api, airflow, cdp_url):  # noqa: F811
    wrong = big_line_file(20_000, LINE_HEADER.replace("Email", "Emial"))
    assert len(wrong) > intake.HEAD_BYTES
    assert [e["code"] for e in refused(upload(api, wrong))] == ["unknown_column"]
    # a quoted cell with a line break, which the sample's end cuts in two, in a file the DAG accepts
    for pad in range(200):
        text = csv_bytes(20_000).replace(b",VIP,", b',"VIP\nGold",').replace(b"Person 0,", b"Person 0" + b"x" * pad + b",")
        if intake._to_last_line_end(text[:intake.HEAD_BYTES]).endswith(b'"VIP\n'):
            break
    else:
        pytest.fail("no cut inside a quoted cell")
    assert upload(api, text).status_code == 202
    # UTF-16 (Excel's "Unicode text"), a line end being two bytes
    utf16 = csv_bytes(20_000).decode().replace(",", "\t").encode("utf-16")
    assert len(utf16) > intake.HEAD_BYTES
    assert upload(api, utf16, name="unicode.txt").status_code == 202
    whatsapp = "WhatsApp User ID\tName\tEmail\n" + "".join(f"8869{n:08d}\tP{n}\tp{n}@example.com\n"
                                                          for n in range(40_000))
    wrong16 = whatsapp.encode("utf-16")
    assert len(wrong16) > intake.HEAD_BYTES
    assert refused(upload(api, wrong16, name="wa.txt"))[0]["code"] == "channel_mismatch"


def test_a_workbook_of_another_channel_is_named_at_once(api, nothing_left):
    book = workbook([["WhatsApp User ID", "Name"], ["886911223344", "Amy"]])
    errors = refused(upload(api, book, name="contacts.xlsx"))
    assert errors[0]["code"] == "channel_mismatch"


# ---------------------------------------------------------------- item 5: compressed uploads

def test_a_gz_is_stored_unpacked_and_imports(api, airflow, cdp_url):  # noqa: F811
    plain = csv_bytes(5, start=700)
    created = upload(api, gzip.compress(plain), name="Contacts.CSV.GZ")
    assert created.status_code == 202, created.text
    record = created.json()
    assert record["file_name"] == "Contacts.CSV.GZ"
    (conf,) = airflow.triggered
    assert conf["file"].endswith(f"{record['id']}/upload.csv") and stored_bytes(conf) == plain
    with db.transaction(cdp_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT file_sha256 FROM cdp.imports WHERE id = %s", (record["id"],))
        assert cur.fetchone()[0] == hashlib.sha256(plain).hexdigest()  # of what the DAG reads
    done = run_recorded(cdp_url, record["id"])
    assert done["status"] == "completed" and done["result"]["created"] == 5


def test_a_gz_of_several_members_is_one_file(api, airflow):  # noqa: F811
    plain = csv_bytes(4)
    cut = plain.index(b"\n", len(plain) // 2) + 1
    assert upload(api, gzip.compress(plain[:cut]) + gzip.compress(plain[cut:])).status_code == 202
    assert stored_bytes(airflow.triggered[0]) == plain


def test_a_zip_holding_one_csv_or_workbook_is_stored_as_that_file(api, airflow, cdp_url):  # noqa: F811
    plain = csv_bytes(3, start=800)
    macos = zipped(("contacts.csv", plain), ("__MACOSX/._contacts.csv", b"\0\5\26\7"), ("folder/", b""))
    assert upload(api, macos, name="contacts.zip").status_code == 202
    assert airflow.triggered[-1]["file"].endswith("/upload.csv") and stored_bytes(airflow.triggered[-1]) == plain
    book = workbook([LINE_HEADER.split(","), ["U" + "0" * 31 + "9", "Wu", "wu@example.com"]])
    created = upload(api, zipped(("Export 2026.xlsx", book)), name="export.zip")
    assert created.status_code == 202, created.text
    assert airflow.triggered[-1]["file"].endswith("/upload.xlsx") and stored_bytes(airflow.triggered[-1]) == book
    assert run_recorded(cdp_url, created.json()["id"])["status"] == "completed"
    # a workbook is itself a zip: sent plain, it is stored as it came
    assert upload(api, book, name="contacts.xlsx").status_code == 202
    assert stored_bytes(airflow.triggered[-1]) == book


@pytest.mark.parametrize("content, code", [
    (zipped(("a.csv", csv_bytes(1)), ("b.csv", csv_bytes(1))), "archive_not_one_file"),
    (zipped(), "not_a_table"),  # an empty .zip is its end record only: no table in it
    (gzip.compress(csv_bytes(50))[:-40], "archive_unreadable"),
    (b"\x1f\x8b" + b"not gzip at all", "archive_unreadable"),
    (b"PK\x03\x04" + b"\0" * 100, "archive_unreadable"),
])
def test_a_compressed_file_that_cannot_be_taken_is_refused(api, nothing_left, content, code):
    assert [e["code"] for e in refused(upload(api, content, name="contacts.zip"))] == [code]


def zeros_zip(size: int, declared: int | None = None) -> bytes:
    """A .zip of one member of `size` zero bytes (about 1,000 times smaller), its header
    claiming `declared` bytes when given."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("contacts.csv", "w", force_zip64=False) as member:
            for _ in range(size // 2**20):
                member.write(bytes(2**20))
    data = out.getvalue()
    if declared is not None:  # the uncompressed size in the local header (offset 22) and the directory (24)
        central = data.rindex(b"PK\x01\x02")
        data = bytearray(data)
        data[22:26] = declared.to_bytes(4, "little")
        data[central + 24:central + 28] = declared.to_bytes(4, "little")
        data = bytes(data)
    return data


def zeros_gz(size: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    return b"".join([*(packer.compress(bytes(2**20)) for _ in range(size // 2**20)), packer.flush()])


def test_a_zip_bomb_stops_at_the_unpacked_limit(api, nothing_left, monkeypatch):
    monkeypatch.setenv("CONTACT_IMPORT_MAX_UPLOAD_MB", "1")
    monkeypatch.setenv("CONTACT_IMPORT_MAX_UNPACKED_MB", "2")
    bomb = zeros_zip(200 * 2**20)  # 200 MiB in about 200 KiB
    assert len(bomb) < 2**20
    (error,) = refused(upload(api, bomb, name="contacts.zip"), 413)
    assert error["code"] == "unpacked_too_large"
    assert error["message"] == "Unpacked, the file is larger than 2 MiB; split it into smaller files."
    # the same bomb whose header claims 100 bytes: inflating stops there and the CRC check fails
    liar = zeros_zip(200 * 2**20, declared=100)
    assert refused(upload(api, liar, name="contacts.zip"))[0]["code"] == "archive_unreadable"


def test_a_gz_whose_unpacked_size_passes_the_limit_is_refused_while_it_streams(api, nothing_left, monkeypatch):
    monkeypatch.setenv("CONTACT_IMPORT_MAX_UPLOAD_MB", "1")
    monkeypatch.setenv("CONTACT_IMPORT_MAX_UNPACKED_MB", "2")
    bomb = zeros_gz(1024 * 2**20)  # 1 GiB in about 1 MiB: inflated whole, it would fill memory or disk
    assert len(bomb) < 2**20
    answer = api.post(f"{API}/imports", headers={"Accept-Language": "zh-TW"},
                      data={"workspace": "demo", "channel": "line"},
                      files={"file": ("contacts.csv.gz", io.BytesIO(bomb), "application/gzip")})
    (error,) = refused(answer, 413)
    assert error["code"] == "unpacked_too_large" and error["message"] == "解壓縮後的檔案超過 2 MiB，請分割成較小的檔案。"


def test_a_file_over_the_upload_limit_is_told_to_compress_or_split_and_compressed_gets_in(
        api, airflow, cdp_url, monkeypatch):  # noqa: F811
    monkeypatch.setenv("CONTACT_IMPORT_MAX_UPLOAD_MB", "1")
    before = stored_folders(cdp_url)
    plain = csv_bytes(15_000)
    assert len(plain) > 2**20
    (error,) = refused(upload(api, plain), 413)
    assert error["code"] == "file_too_large"
    assert error["message"] == ("The file is larger than 1 MiB. Compress it (.csv.gz, or a .zip holding the file:"
                                " a CSV shrinks to about a fifth) or split it into smaller files.")
    assert stored_folders(cdp_url) == before and import_count(cdp_url) == 0
    assert upload(api, gzip.compress(plain), name="contacts.csv.gz").status_code == 202
    assert stored_bytes(airflow.triggered[0]) == plain


def test_the_default_limits_take_the_benchmark_s_million_rows(monkeypatch):
    monkeypatch.delenv("CONTACT_IMPORT_MAX_UPLOAD_MB", raising=False)
    monkeypatch.delenv("CONTACT_IMPORT_MAX_UNPACKED_MB", raising=False)
    million_rows_mib = 132
    assert config.max_upload_mb() == 512 >= million_rows_mib
    assert config.max_unpacked_mb() == 1024


def storage_on_s3(monkeypatch, endpoint: str, tmp_path) -> None:
    """The import files in bucket cdp-files of the S3 server at `endpoint`, scratch files local."""
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("CONTACT_IMPORT_STORAGE", "s3://cdp-files/files")
    monkeypatch.setenv("CONTACT_IMPORT_SCRATCH", str(tmp_path / "scratch"))


def test_on_object_storage_the_unpacked_file_is_stored_and_nothing_of_a_refused_one(
        api, airflow, cdp_url, monkeypatch, tmp_path):  # noqa: F811
    from tests.s3_server import s3_server

    with s3_server("cdp-files") as (endpoint, client):
        storage_on_s3(monkeypatch, endpoint, tmp_path)
        monkeypatch.setenv("CONTACT_IMPORT_MAX_UPLOAD_MB", "1")
        monkeypatch.setenv("CONTACT_IMPORT_MAX_UNPACKED_MB", "2")

        def stored_keys() -> list[str]:
            return sorted(o["Key"] for o in client.list_objects_v2(Bucket="cdp-files").get("Contents", []))

        wrong = zipped(("wa.xlsx", workbook([["WhatsApp User ID", "Name"], ["886911223344", "Amy"]])))
        assert refused(upload(api, wrong, name="wa.zip"))[0]["code"] == "channel_mismatch"
        assert refused(upload(api, zeros_gz(64 * 2**20), name="bomb.csv.gz"), 413)[0]["code"] == "unpacked_too_large"
        assert stored_keys() == [] and import_count(cdp_url) == 0
        plain = csv_bytes(4, start=900)
        created = upload(api, zipped(("contacts.csv", plain)), name="contacts.zip")
        assert created.status_code == 202, created.text
        record_id = created.json()["id"]
        assert stored_keys() == [f"files/imports/{record_id}/upload.csv"]
        assert client.get_object(Bucket="cdp-files", Key=stored_keys()[0])["Body"].read() == plain
        assert not any((tmp_path / "scratch").rglob("*.*"))  # the spool and the check's copies are gone
        assert run_recorded(cdp_url, record_id)["status"] == "completed"


def test_object_storage_out_of_reach_while_the_file_streams_in_answers_503_and_keeps_nothing(
        api, airflow, cdp_url, monkeypatch, tmp_path):  # noqa: F811
    from tests.s3_server import s3_server, start_again, stop

    with s3_server("cdp-files") as (endpoint, client):
        storage_on_s3(monkeypatch, endpoint, tmp_path)
        stop(endpoint)
        try:
            lost = upload(api, csv_bytes(2))
        finally:
            start_again(endpoint)
        assert lost.status_code == 503, lost.text
        assert lost.json()["detail"].startswith("The import's file storage could not be reached (storing the upload: ")
        assert client.list_objects_v2(Bucket="cdp-files").get("Contents", []) == []
        assert import_count(cdp_url) == 0 and airflow.triggered == []
        assert upload(api, csv_bytes(2)).status_code == 202  # storage back: the same upload goes through
