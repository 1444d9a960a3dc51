"""The corpus of real-world files (tests/data/make_corpus.py, issue 3), checked as a user would:
`contact-import validate --json` on each file, and for each valid file an import whose
export shows the exact names (nothing garbled); for each rejected file the right error
code on the right line of the original file in the error report.
"""
import csv
import json

import pytest

from contact_import import cli
from tests.data import make_corpus
from tests.helpers import exported, run_stages

VALID = make_corpus.case_names(valid=True)
REJECTED = make_corpus.case_names(valid=False)
REPORT_COLUMNS = ["row", "column", "value", "code", "message"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    return out, {c.file: c for c in make_corpus.build(out)}


def validate(capsys, url, path, report_dir) -> tuple[int, dict]:
    code = cli.main(["--db", url, "validate", str(path), "--workspace", "demo", "--channel", "line", "--json",
                     "--report-dir", str(report_dir)])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, json.loads(out)


def test_the_manifest_describes_every_file(corpus):
    out, cases = corpus
    manifest = json.loads((out / make_corpus.MANIFEST).read_text(encoding="utf-8"))
    assert sorted(c["file"] for c in manifest["cases"]) == sorted(VALID + REJECTED)
    assert sorted(p.name for p in out.iterdir()) == sorted(VALID + REJECTED + [make_corpus.MANIFEST])
    for entry in manifest["cases"]:
        assert entry["description"]
        if entry["valid"]:
            assert 20 <= entry["rows"] <= 40 and len(entry["contacts"]) == entry["rows"]
        else:
            assert entry["code"]


@pytest.mark.parametrize("name", VALID)
def test_validate_reports_encoding_delimiter_and_rows(capsys, cdp_url, demo_workspace, corpus, tmp_path, name):
    out, cases = corpus
    case = cases[name]
    code, result = validate(capsys, cdp_url, out / name, tmp_path)
    assert (code, result["errors"], result["errors_by_code"]) == (0, 0, {}), result
    assert result["status"] == "valid" and result["error_report"] is None
    assert (result["encoding"], result["delimiter"], result["rows"]) == (case.encoding, case.delimiter, case.rows)
    assert result["preview"]["created"] == case.rows


@pytest.mark.parametrize("name", VALID)
def test_import_keeps_every_name_intact(cdp_url, demo_workspace, corpus, name):
    out, cases = corpus
    case = cases[name]
    record = run_stages(cdp_url, out / name)
    assert record["status"] == "completed", record.get("message")
    assert (record["encoding"], record["delimiter"], record["total_rows"]) == (case.encoding, case.delimiter,
                                                                                 case.rows)
    contacts = exported(cdp_url)
    assert sorted(contacts) == sorted(case.contacts)
    wrong = {}
    for user_id, want in case.contacts.items():
        got = contacts[user_id]
        got = {key: sorted(got[key]) if key == "tags" else got[key] for key in want}
        want = {key: sorted(value) if key == "tags" else value for key, value in want.items()}
        if got != want:
            wrong[user_id] = {"expected": want, "exported": got}
    assert not wrong, json.dumps(wrong, ensure_ascii=False, indent=1)
    # The proof the text was decoded, not merely passed through: every name arrives exactly.
    assert sorted(c["name"] for c in contacts.values()) == sorted(c["name"] for c in case.contacts.values())


@pytest.mark.parametrize("name", REJECTED)
def test_rejected_file_reports_the_code_on_its_line(capsys, cdp_url, demo_workspace, corpus, tmp_path, name):
    out, cases = corpus
    case = cases[name]
    code, result = validate(capsys, cdp_url, out / name, tmp_path / "reports")
    assert code == 1, result
    assert result["status"] == "validation_failed" and result["preview"] is None
    # One mistake in the file, one error: the expected code, reported once.
    assert result["errors_by_code"] == {case.code: 1}, result["errors_by_code"]
    report = tmp_path / "reports" / f"{(out / name).stem}.errors.csv"
    assert result["error_report"] == str(report)
    raw = report.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 with BOM, so Excel shows the Chinese messages
    rows = list(csv.reader(raw.decode("utf-8-sig").splitlines()))
    assert rows[0] == REPORT_COLUMNS
    entries = [dict(zip(REPORT_COLUMNS, r)) for r in rows[1:]]
    assert len(entries) == result["errors"]
    expected_row = "" if case.row is None else str(case.row)
    hits = [e for e in entries if e["code"] == case.code]
    assert [e["row"] for e in hits] == [expected_row], entries
    for text in case.message_contains:
        assert text in hits[0]["message"], hits[0]
