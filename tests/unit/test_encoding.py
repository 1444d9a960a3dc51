import codecs
import csv
import zipfile

import pytest

from contact_import import encoding
from contact_import.encoding import SourceInfo, to_utf8
from contact_import.errors import CODES, ImportFileError

NAMES_TW = ["陳怡君", "林志明", "黃淑芬", "張家豪", "李美玲", "王建民", "吳佩珊", "劉俊傑", "蔡宜蓁", "楊宗翰",
            "許雅婷", "鄭文華", "謝欣怡", "郭志偉", "洪淑惠", "曾冠宇", "邱雅雯", "廖國強", "賴佳穎", "周書豪"]
ADDR_TW = ["臺北市信義區松仁路100號", "新北市板橋區文化路一段50號", "臺中市西屯區臺灣大道三段99號",
           "高雄市苓雅區四維三路2號", "臺南市東區大學路1號"]
NAMES_CN = ["王伟", "李娜", "张敏", "刘洋", "陈静", "杨磊", "赵丽", "黄强", "周杰", "吴芳",
            "徐涛", "孙燕", "马超", "朱琳", "胡军", "郭晶", "何鹏", "高翔", "林欣", "罗刚"]
ADDR_CN = ["北京市朝阳区建国路88号", "上海市浦东新区世纪大道100号", "广州市天河区体育西路", "深圳市南山区科技园"]
NAMES_JP = ["佐藤太郎", "鈴木花子", "高橋健一", "田中美咲", "伊藤翔太", "渡辺さくら", "山本大輔", "中村愛", "小林悠斗",
            "加藤結衣", "吉田拓海", "山田陽菜", "佐々木蓮", "山口葵", "松本湊", "井上凛", "木村颯", "林美月", "斎藤大和", "清水結菜"]
ADDR_JP = ["東京都新宿区西新宿二丁目８番１号", "大阪府大阪市北区梅田一丁目", "京都府京都市左京区", "北海道札幌市中央区"]


def table(names, addresses, header=("LINE User ID", "姓名", "地址")):
    return [list(header)] + [[f"U{i:04d}", n, addresses[i % len(addresses)]] for i, n in enumerate(names)]


def render(rows, delimiter=",", newline="\r\n"):
    return "".join(delimiter.join(r) + newline for r in rows)


def convert(tmp_path, data: bytes, **kwargs):
    src, dest = tmp_path / "upload.csv", tmp_path / "out.csv"
    src.write_bytes(data)
    info = to_utf8(src, dest, **kwargs)
    with open(dest, encoding="utf-8", newline="") as f:
        assert f.read(1) != "\ufeff"  # dest never has a BOM
        f.seek(0)
        return info, list(csv.reader(f))


def fails(tmp_path, data: bytes, code: str, **kwargs):
    src, dest = tmp_path / "upload.csv", tmp_path / "out.csv"
    src.write_bytes(data)
    with pytest.raises(ImportFileError) as exc:
        to_utf8(src, dest, **kwargs)
    issue = exc.value.issue
    assert issue.code == code and code in CODES
    assert not dest.exists() and not (tmp_path / "out.csv.tmp").exists()
    issue.message("en"), issue.message("zh-TW")  # every template fills
    return issue


def numbered(rows, first=2):
    return [["__row__", *rows[0]]] + [[str(first + i), *r] for i, r in enumerate(rows[1:])]


# --- encodings -------------------------------------------------------------------

@pytest.mark.parametrize("bom, expected", [(b"", "utf-8"), (codecs.BOM_UTF8, "utf-8-sig")])
def test_utf8_with_and_without_bom(tmp_path, bom, expected):
    rows = table(NAMES_TW[:3], ADDR_TW) + [["U9", "José Müller 😀", "Zürich"]]
    info, out = convert(tmp_path, bom + render(rows).encode("utf-8"))
    assert info == SourceInfo(expected, ",", 4, ["LINE User ID", "姓名", "地址"])
    assert out == numbered(rows)


def test_ascii_reported_as_utf8(tmp_path):
    info, _ = convert(tmp_path, b"Name,Email\nAnn,a@x.io\n")
    assert info.encoding == "utf-8"


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_with_bom_tab_delimited(tmp_path, codec):
    rows = table(NAMES_TW[:4], ADDR_TW)
    rows[1][2] = "台北, 信義"  # a comma in a tab file does not make it a comma file
    data = codecs.BOM_UTF16_LE if codec.endswith("le") else codecs.BOM_UTF16_BE
    info, out = convert(tmp_path, data + render(rows, "\t").encode(codec))
    assert (info.encoding, info.delimiter, info.rows) == ("utf-16", "\t", 4)
    assert info.header == ["LINE User ID", "姓名", "地址"]
    assert out == numbered(rows)


def test_utf16_tab_wins_ties(tmp_path):
    data = "Name, Title\tPhone\nAnn, CEO\t886911223344\n".encode("utf-16")
    info, out = convert(tmp_path, data)
    assert info.delimiter == "\t"
    assert out[1] == ["2", "Ann, CEO", "886911223344"]


def test_utf16_without_bom(tmp_path):
    rows = [["Name", "Email"], ["Ann", "ann@example.com"], ["陳怡君", "chen@example.com"]]
    info, out = convert(tmp_path, render(rows, "\t").encode("utf-16-le"))
    assert (info.encoding, info.delimiter) == ("utf-16-le", "\t")
    assert out == numbered(rows)


@pytest.mark.parametrize("written_as", ["big5", "cp950"])
def test_big5_traditional_chinese(tmp_path, written_as):
    rows = table(NAMES_TW, ADDR_TW)
    if written_as == "cp950":
        rows[3][2] = "價格 €100"  # "€" exists only in cp950, the superset we decode with
    info, out = convert(tmp_path, render(rows).encode(written_as))
    assert (info.encoding, info.rows) == ("cp950", 20)
    assert [r[2] for r in out[1:]] == NAMES_TW
    assert out == numbered(rows)


@pytest.mark.parametrize("written_as", ["gb2312", "gbk", "gb18030"])
def test_gb18030_simplified_chinese(tmp_path, written_as):
    rows = table(NAMES_CN, ADDR_CN, header=("LINE User ID", "姓名", "地址"))
    if written_as != "gb2312":
        rows[5][1] = "王堃"  # in gbk, not in gb2312
    info, out = convert(tmp_path, render(rows).encode(written_as))
    assert (info.encoding, info.rows) == ("gb18030", 20)
    assert out == numbered(rows)


@pytest.mark.parametrize("written_as", ["shift_jis", "cp932"])
def test_shift_jis_japanese(tmp_path, written_as):
    rows = table(NAMES_JP, ADDR_JP, header=("LINE User ID", "氏名", "住所"))
    if written_as == "cp932":
        rows[2][1], rows[4][2] = "髙橋一郎", "東京都①番地"  # Windows-only characters
    info, out = convert(tmp_path, render(rows).encode(written_as))
    assert (info.encoding, info.rows) == ("cp932", 20)
    assert [r[2] for r in out[1:]] == [r[1] for r in rows[1:]]
    assert out == numbered(rows)


@pytest.mark.parametrize("text, written_as, expected", [
    ("姓名\r\n陳怡君\r\n", "big5", "cp950"),
    ("ID,姓名,地址\r\nU0,蔡宜蓁,\r\n", "big5", "cp950"),
    ("姓名\r\n王伟\r\n", "gb18030", "gb18030"),
    ("氏名\r\n佐藤\r\n", "cp932", "cp932"),
    ("이름,주소\r\n김민수,서울특별시 강남구\r\n", "euc_kr", "cp949"),
    ("Name,City\r\nJosé Müller,Zürich\r\nÅsa Ström,Malmö\r\n", "cp1252", "cp1252"),
    ("Name,Note\r\n" + "N,陳怡君陳怡君\r\n" * 50, "big5", "cp950"),  # the detector offers no big5 here
    ("Name\r\nJosé\r\n", "cp1252", "cp1252"),
    ("Имя,Город\r\nИван Петров,Москва\r\nОльга Смирнова,Санкт-Петербург\r\n", "cp1251", "cp1251"),
])
def test_one_or_two_row_legacy_files(tmp_path, text, written_as, expected):
    # Too short for the detector alone: CJK candidates are re-ranked by common characters.
    info, out = convert(tmp_path, text.encode(written_as))
    assert info.encoding == expected
    assert [r[1:] for r in out] == list(csv.reader(text.splitlines()))


@pytest.mark.parametrize("size", range(1, 40))
def test_sample_cut_inside_a_character(tmp_path, monkeypatch, size):
    monkeypatch.setattr(encoding, "SAMPLE_BYTES", size)
    rows = table(NAMES_TW[:3], ADDR_TW)
    info, out = convert(tmp_path, render(rows).encode("utf-8"))
    assert info.encoding == "utf-8" and out == numbered(rows)


def test_legacy_sample_cut_at_a_line_end(tmp_path, monkeypatch):
    monkeypatch.setattr(encoding, "SAMPLE_BYTES", 700)  # ends mid-character in an unaligned line
    rows = table(NAMES_TW * 3, ADDR_TW)
    info, out = convert(tmp_path, render(rows).encode("big5"))
    assert info.encoding == "cp950" and out == numbered(rows)


# --- delimiters, quoting, line ends ------------------------------------------------

@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_each_delimiter(tmp_path, delimiter):
    rows = [["Name", "Email", "Phone"], ["Ann", "ann@x.io", "886911223344"], ["陳怡君", "", "886922334455"]]
    info, out = convert(tmp_path, render(rows, delimiter).encode("utf-8"))
    assert (info.delimiter, info.rows) == (delimiter, 2)
    assert out == numbered(rows)


def test_single_column(tmp_path):
    info, out = convert(tmp_path, b"LINE User ID\nU1\nU2\n")
    assert (info.delimiter, info.header, info.rows) == (",", ["LINE User ID"], 2)
    assert out == [["__row__", "LINE User ID"], ["2", "U1"], ["3", "U2"]]


QUOTED = ('Name;Note;Tags\n'
          '"Lin; Mei";"she said ""hi""";a\n'
          '"Chen";"line one\nline two";"x;y"\n'
          'Wang;;b\n')


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_quoted_fields_and_line_ends(tmp_path, newline):
    data = QUOTED.replace("\n", newline).encode("utf-8")
    info, out = convert(tmp_path, data)
    assert (info.delimiter, info.rows) == (";", 3)
    assert out == [
        ["__row__", "Name", "Note", "Tags"],
        ["2", "Lin; Mei", 'she said "hi"', "a"],
        ["3", "Chen", "line one\nline two", "x;y"],  # in-cell line breaks become "\n"
        ["5", "Wang", "", "b"],  # the record above spans lines 3-4
    ]


def test_many_crlf_lines_across_read_chunks(tmp_path):
    rows = [["id", "name"]] + [[str(i), "陳怡君" * (i % 7)] for i in range(6000)]
    info, out = convert(tmp_path, render(rows).encode("utf-8"))
    assert info.rows == 6000 and out[-1] == ["6001", "5999", "陳怡君" * (5999 % 7)]


def test_blank_lines_skipped_but_counted(tmp_path):
    data = b"\n\nName,Email\n\nAnn,a@x.io\n,,\n  ,\nBob,b@x.io\n\n"
    info, out = convert(tmp_path, data)
    assert info.rows == 2
    assert out == [["__row__", "Name", "Email"], ["5", "Ann", "a@x.io"], ["8", "Bob", "b@x.io"]]


def test_header_trimmed_short_rows_padded_empty_extras_dropped(tmp_path):
    data = " Name , Email ,,\nAnn\nBob,b@x.io,,\n".encode("utf-8")
    info, out = convert(tmp_path, data)
    assert info.header == ["Name", "Email"]
    assert out == [["__row__", "Name", "Email"], ["2", "Ann", ""], ["3", "Bob", "b@x.io"]]


def test_csv_field_size_limit_restored(tmp_path):
    before = csv.field_size_limit()
    src = tmp_path / "upload.csv"
    src.write_bytes(b"a\n" + b"x" * 200_000 + b"\n")
    assert to_utf8(src, tmp_path / "out.csv", max_cell_chars=300_000).rows == 1
    assert csv.field_size_limit() == before


# --- errors --------------------------------------------------------------------------

def test_a_broken_workbook_is_not_a_table(tmp_path):
    src = tmp_path / "book.zip"
    with zipfile.ZipFile(src, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("xl/workbook.xml", "<workbook/>")
    assert fails(tmp_path, src.read_bytes(), "not_a_table").params["detail"].startswith("unreadable xlsx")


def test_xlsx_first_sheet_with_numeric_phones_and_dates(tmp_path):
    import datetime

    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["LINE User ID", "姓名", "Phone", "Birthday", "Points"])
    sheet.append(["U" + "a" * 32, "王小明", 886911223344, datetime.date(1990, 1, 31), 12.5])
    sheet.append([])
    sheet.append(["U" + "b" * 32, "Mary", 85291234567.0, datetime.datetime(1985, 12, 1), 3])
    book.create_sheet("ignored").append(["not", "read"])
    book.save(tmp_path / "book.xlsx")
    info = to_utf8(tmp_path / "book.xlsx", tmp_path / "out.csv")
    assert (info.encoding, info.delimiter, info.rows) == ("xlsx", None, 2)
    rows = list(csv.reader(open(tmp_path / "out.csv", encoding="utf-8")))
    assert rows == [["__row__", "LINE User ID", "姓名", "Phone", "Birthday", "Points"],
                    ["2", "U" + "a" * 32, "王小明", "886911223344", "1990-01-31", "12.5"],
                    ["4", "U" + "b" * 32, "Mary", "85291234567", "1985-12-01", "3"]]


@pytest.mark.parametrize("data, detail", [
    (b"PK\x03\x04garbage", "zip"),
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "pdf"),
    (b"Name,Email\nAnn\x00,a@x.io\n", "binary"),
    (bytes(range(1, 9)) * 20 + b"Name\n", "binary"),
    ("\ufeff<!DOCTYPE html><table><tr><td>Name</td></tr></table>".encode(), "html"),
])
def test_not_a_table(tmp_path, data, detail):
    assert fails(tmp_path, data, "not_a_table").params == {"detail": detail}


def test_an_ole2_file_holding_no_workbook_is_not_a_table(tmp_path):
    # The .xls signature is shared by .doc, .msg and encrypted workbooks.
    issue = fails(tmp_path, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600), "not_a_table")
    assert issue.params["detail"].startswith("unreadable xls")


def test_an_opendocument_text_is_not_a_table(tmp_path):
    src = tmp_path / "letter.odt"
    with zipfile.ZipFile(src, "w") as z:
        z.writestr("mimetype", "application/vnd.oasis.opendocument.text")
        z.writestr("content.xml", "<office:document-content/>")
    assert fails(tmp_path, src.read_bytes(), "not_a_table").params == {"detail": "zip"}


@pytest.mark.parametrize("first, second", [("utf-8", "big5"), ("big5", "utf-8"), ("utf-8", "gb18030")])
@pytest.mark.parametrize("rows_before", [2, 20, 300])
def test_two_exports_glued_together_name_the_line_where_the_second_begins(tmp_path, first, second, rows_before):
    # A partner appends this week's Big5 export to last week's UTF-8 one: neither
    # encoding reads the whole file, and the report points at the join.
    names = NAMES_TW if "gb" not in second else NAMES_CN
    head = render(table((NAMES_TW * 20)[:rows_before], ADDR_TW)).encode(first)
    tail = render(table(names, ADDR_TW)[1:]).encode(second)
    issue = fails(tmp_path, head + tail, "encoding_undetectable")
    assert issue.row == rows_before + 2  # header = 1, then the first part's rows
    assert issue.message("en") and issue.message("zh-TW")


def test_a_short_glued_file_is_not_read_garbled_by_a_single_byte_codec(tmp_path):
    # Two names only: too little for the detector, which would take cp1256 and garble both.
    data = "LINE User ID,Name\nU1,王小明\n".encode("utf-8") + "U2,陳怡君\n".encode("big5")
    issue = fails(tmp_path, data, "encoding_undetectable")
    assert issue.row == 3


def test_invalid_byte_after_the_sample(tmp_path, monkeypatch):
    monkeypatch.setattr(encoding, "SAMPLE_BYTES", 64)
    data = render(table(NAMES_TW, ADDR_TW)).encode("utf-8") + b"U9,\xff\xfe,x\r\n"
    assert fails(tmp_path, data, "encoding_undetectable").row == 22


def test_mostly_utf8_with_a_stray_byte(tmp_path):
    rows = table(NAMES_TW, ADDR_TW)
    rows[8][1] = "caf\xe9"  # line 9
    data = render(rows).encode("utf-8").replace("caf\xe9".encode(), b"caf\xe9")  # a cp1252 é
    assert fails(tmp_path, data, "encoding_undetectable").row == 9


def test_big5_with_an_invalid_pair_late(tmp_path, monkeypatch):
    monkeypatch.setattr(encoding, "SAMPLE_BYTES", 600)
    data = render(table(NAMES_TW * 2, ADDR_TW)).encode("big5") + b"U9,\xa1\x20,x\r\n"
    assert fails(tmp_path, data, "encoding_undetectable").row == 42


@pytest.mark.parametrize("data", [
    b"", codecs.BOM_UTF8, b"\r\n\r\n", b"Name,Email\r\n", b"Name,Email\n,\n\n", "姓名\n".encode("utf-16"),
])
def test_file_empty(tmp_path, data):
    assert fails(tmp_path, data, "file_empty").row is None


def test_unterminated_quote_reports_where_it_opens(tmp_path):
    issue = fails(tmp_path, b'Name,Note\nAnn,ok\nBob,"never closed\nCat,x\n', "malformed_csv")
    assert issue.row == 3 and "never closed" in issue.params["detail"]


def test_text_after_closing_quote(tmp_path):
    issue = fails(tmp_path, b'Name,Note\nAnn,ok\nBob,"two\nlines"x,y\n', "malformed_csv")
    assert issue.row == 4 and issue.params["detail"]


def test_more_cells_than_header(tmp_path):
    issue = fails(tmp_path, b"Name,Email\nAnn,a@x.io\nBob,b@x.io,extra\n", "malformed_csv")
    assert issue.row == 3 and issue.params == {"detail": "3 cells but the header has 2"}


def test_value_too_long(tmp_path):
    data = "Name,Note\nAnn,ok\n\n陳怡君,{}\n".format("長" * 11).encode("utf-8")
    issue = fails(tmp_path, data, "value_too_long", max_cell_chars=10)
    assert (issue.row, issue.column, issue.params) == (4, "Note", {"limit": 10})
    convert(tmp_path, data, max_cell_chars=11)


def test_runaway_cell_hits_csv_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(encoding, "FIELD_LIMIT", 50)
    data = b'Name,Note\nAnn,"' + b"x\n" * 100
    issue = fails(tmp_path, data, "malformed_csv", max_cell_chars=10)
    assert issue.row == 2


def test_failure_keeps_previous_dest(tmp_path):
    dest = tmp_path / "out.csv"
    dest.write_text("old")
    (tmp_path / "upload.csv").write_bytes(b"Name\nAnn\nBob,extra\n")
    with pytest.raises(ImportFileError):
        to_utf8(tmp_path / "upload.csv", dest)
    assert dest.read_text() == "old" and not (tmp_path / "out.csv.tmp").exists()
