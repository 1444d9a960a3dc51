"""Generate the import-file corpus (issue 3): files as people really send them.

    python tests/data/make_corpus.py [OUT_DIR]      # default: tests/data/corpus/

Writes one file per case plus `manifest.json` describing what each file should give:
for a valid file the encoding and delimiter `contact-import validate` reports, the row
count and the contacts the LINE channel import must produce; for a rejected file the
error code and the line of the original file it is reported on (header = 1, blank for
an error about the whole file). Everything is generated here, nothing is hand-edited,
so the corpus is reproducible byte for byte (`build(out_dir)` returns the cases).

All files are for the LINE channel of the demo workspace (examples/demo-workspace.yaml:
default region TW, attributes "VIP Level" select Gold/Silver/Bronze and "Points" number).
"""
from __future__ import annotations

import codecs
import csv
import datetime
import io
import json
import random
import sys
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parent / "corpus"
MANIFEST = "manifest.json"


@dataclass
class Case:
    file: str  # file name inside the corpus directory
    valid: bool
    description: str
    # valid files: what `validate --json` reports, and the contacts after the import
    encoding: str | None = None
    delimiter: str | None = None
    rows: int | None = None
    contacts: dict[str, dict] = field(default_factory=dict)  # user_id -> expected export fields (a subset)
    # rejected files: the error code and its line in the original file (None: the whole file)
    code: str | None = None
    row: int | None = None
    message_contains: list[str] = field(default_factory=list)
    data: bytes = field(default=b"", repr=False, compare=False)

    def manifest(self) -> dict:
        entry = {k: v for k, v in asdict(self).items() if k != "data"}
        if self.valid:
            for key in ("code", "row", "message_contains"):
                entry.pop(key)
        else:
            for key in ("encoding", "delimiter", "rows", "contacts"):
                entry.pop(key)
        return entry


_MAKERS: list[tuple[str, bool, Callable[[str], Case]]] = []


def case(file: str, valid: bool):
    def register(fn: Callable[[str], Case]) -> Callable[[str], Case]:
        _MAKERS.append((file, valid, fn))
        return fn
    return register


def case_names(valid: bool | None = None) -> list[str]:
    """The corpus file names, known without generating anything (for pytest parametrize)."""
    return [name for name, v, _ in _MAKERS if valid is None or v == valid]


def build(out_dir: str | Path = DEFAULT_OUT) -> list[Case]:
    """Write every corpus file and manifest.json into out_dir; return the cases."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cases = []
    for name, valid, maker in _MAKERS:
        c = maker(name)
        assert c.file == name and c.valid == valid, name
        (out / name).write_bytes(c.data)
        cases.append(c)
    manifest = {"cases": [c.manifest() for c in cases]}
    (out / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return cases


# ---------------------------------------------------------------- people

NAMES_TW = ["陳怡君", "林志明", "王淑芬", "張家豪", "李雅婷", "黃俊傑", "吳佩珊", "劉建宏", "蔡宗翰", "楊雅雯",
            "許志偉", "鄭美玲", "謝明哲", "郭芳瑜", "洪嘉玲", "曾國華", "邱淑惠", "廖文彬", "賴怡萱", "周家瑋",
            "徐嘉慧", "蘇柏翰", "葉佳蓉", "莊凱文", "呂秀英", "江宏傑", "何欣怡", "羅志遠", "高嘉瑜", "潘俊宏"]
TAGS_TW = ["新客戶", "台北信義店", "會員", "台中公益店", "週年慶", "團購", "電子報訂閱", "生日禮"]
NAMES_CN = ["张伟", "王芳", "李娜", "刘洋", "陈静", "杨磊", "赵敏", "黄晓明", "周杰", "吴霞",
            "徐涛", "孙丽", "马超", "朱红", "胡军", "郭秀英", "何平", "高翔", "林杰", "罗勇",
            "郑丽娟", "梁静", "谢娜", "宋佳", "唐亮", "韩雪", "冯军", "邓超", "曹颖", "彭勃"]
TAGS_CN = ["新客户", "上海门店", "会员", "北京门店", "双十一", "团购", "积分兑换", "老客户"]
NAMES_JP = ["佐藤 花子", "鈴木 一郎", "高橋 美咲", "田中 太郎", "伊藤 健太", "渡辺 さくら", "山本 翔太", "中村 優子",
            "小林 大輔", "加藤 愛", "吉田 拓也", "山田 由美", "佐々木 剛", "山口 結衣", "松本 蓮", "井上 陽菜",
            "木村 悠斗", "林 真由美", "斎藤 直樹", "清水 彩", "山崎 亮", "森 恵美", "池田 誠", "橋本 葵",
            "阿部 翼", "石川 綾香", "山下 智也", "中島 舞", "前田 健", "藤田 美穂"]
TAGS_JP = ["東京本店", "メンバー", "新規顧客", "大阪店", "セール", "ポイント会員", "メルマガ", "誕生日特典"]
# Names from the markets the product serves, in scripts no legacy code page covers at once.
NAMES_MIXED = ["陳怡君", "Tan Wei Ming", "Nguyễn Thị Lan", "Siti Nurhaliza binti Tarudin", "김민준", "佐藤 花子",
               "José Álvarez", "Ahmad bin Ismail", "Priya Raj", "O'Brien Siobhán", "黃俊傑", "Lim Mei Ling 🌸",
               "Wong Ka-Yan", "Rajesh Kumar", "李雅婷", "Chloé Dubois", "Nur Aisyah", "渡辺 さくら", "Ong Boon Hock",
               "Maria Santos", "林志明", "Zoë Müller", "Kavitha Subramaniam", "鄭美玲", "Daniel Lee", "Goh Swee Lian",
               "Aiko Tanaka", "劉建宏", "Ravi Chandran", "Sarah Chua"]
TAGS_MIXED = ["VIP", "新客戶", "newsletter", "Singapore", "Kuala Lumpur", "香港", "東京本店", "Penang"]
VIP = ["Gold", "Silver", "Bronze"]
GENDERS = {"male": ("male", "M", "男"), "female": ("female", "F", "女"), "other": ("other", "其他")}


def uid(file_no: int, n: int) -> str:
    """A LINE User ID: "U" + 32 lowercase hex digits, distinct per file and row."""
    return f"U{file_no:08x}{0xc0ffee:08x}{n:016x}"


def people(file_no: int, names: list[str], tags: list[str], phone: Callable[[int], tuple[str, str]],
           *, gender_style: int = 0, date_sep: str = "-", email_domain: str = "example.com") -> list[dict]:
    """One person per name: raw cells as a spreadsheet holds them, and the expected export."""
    rng = random.Random(file_no)
    out = []
    for n, name in enumerate(names):
        gender = "other" if n % 7 == 6 else ("female", "male")[n % 2]
        styles = GENDERS[gender]
        raw_gender = styles[min(gender_style, len(styles) - 1)]
        born = datetime.date(1960, 1, 1) + datetime.timedelta(days=rng.randrange(0, 40 * 365))
        row_tags = rng.sample(tags, 2)
        phone_raw, phone_digits = phone(n)
        local = f"Contact.{file_no}.{n}"
        out.append({
            "user_id": uid(file_no, n),
            "name": name,
            "email_raw": f"{local}@{email_domain.upper() if n % 4 == 0 else email_domain}",
            "email": f"{local}@{email_domain}".lower(),
            "phone_raw": phone_raw,
            "phone": phone_digits,
            "gender_raw": raw_gender,
            "gender": gender,
            "birthday_raw": born.isoformat().replace("-", date_sep),
            "birthday": born.isoformat(),
            "tags_raw": ",".join(row_tags) if n % 2 else "，".join(row_tags),  # ASCII and full-width comma
            "tags": sorted(row_tags),
            "vip": VIP[n % 3],
            "points": 100 * n + 50,
        })
    return out


def tw_phone(n: int) -> tuple[str, str]:
    digits = f"88691{n:07d}"
    # as people type them: with +, spaces and dashes, or bare digits
    return (f"+886 {digits[3:6]}-{digits[6:9]}-{digits[9:]}" if n % 3 else digits), digits


def cn_phone(n: int) -> tuple[str, str]:
    digits = f"86138{n:08d}"
    return f"+86 138-{digits[5:9]}-{digits[9:]}", digits


def jp_phone(n: int) -> tuple[str, str]:
    digits = f"8190{n:08d}"
    return f"+81 90-{digits[4:8]}-{digits[8:]}", digits


def sg_phone(n: int) -> tuple[str, str]:
    digits = f"658{n:07d}"
    return f"+65 {digits[2:6]} {digits[6:]}", digits


# column key -> (header, raw cell key, expected export key)
COLUMNS = {
    "user_id": ("LINE User ID", "user_id", None),
    "name": ("Name", "name", "name"),
    "email": ("Email", "email_raw", "email"),
    "phone": ("Phone", "phone_raw", "phone"),
    "gender": ("Gender", "gender_raw", "gender"),
    "birthday": ("Birthday", "birthday_raw", "birthday"),
    "tags": ("Tags", "tags_raw", "tags"),
    "vip": ("VIP Level", "vip", None),
    "points": ("Points", "points", None),
}
ALL = ("user_id", "name", "email", "phone", "gender", "birthday", "tags", "vip", "points")


def table(persons: list[dict], columns=ALL, headers: dict[str, str] | None = None) -> list[list[str]]:
    headers = headers or {}
    head = [headers.get(c, COLUMNS[c][0]) for c in columns]
    return [head] + [[str(p[COLUMNS[c][1]]) for c in columns] for p in persons]


def expected(persons: list[dict], columns=ALL) -> dict[str, dict]:
    result = {}
    for p in persons:
        contact = {COLUMNS[c][2]: p[COLUMNS[c][2]] for c in columns if COLUMNS[c][2]}
        if "vip" in columns or "points" in columns:
            contact["attributes"] = {**({"vip_level": p["vip"]} if "vip" in columns else {}),
                                     **({"points": p["points"]} if "points" in columns else {})}
        result[p["user_id"]] = contact
    return result


def render(rows: list[list[str]], delimiter: str = ",", newline: str = "\r\n") -> str:
    """As Excel / Sheets write it: minimal quoting, doubled quotes."""
    buf = io.StringIO()
    csv.writer(buf, delimiter=delimiter, lineterminator=newline, quoting=csv.QUOTE_MINIMAL).writerows(rows)
    return buf.getvalue()


def encode(text: str, codec: str) -> bytes:
    """Strict: a name the code page lacks is a corpus bug, never silently a "?"."""
    if codec == "utf-16-le-bom":
        return codecs.BOM_UTF16_LE + text.encode("utf-16-le")
    if codec == "utf-16-be-bom":
        return codecs.BOM_UTF16_BE + text.encode("utf-16-be")
    return text.encode(codec)


def valid(name: str, description: str, persons: list[dict], data: bytes, encoding: str, delimiter: str | None,
          columns=ALL) -> Case:
    return Case(name, True, description, encoding=encoding, delimiter=delimiter, rows=len(persons),
                contacts=expected(persons, columns), data=data)


def rejected(name: str, description: str, data: bytes, code: str, row: int | None,
             message_contains: list[str] | None = None) -> Case:
    return Case(name, False, description, code=code, row=row, message_contains=message_contains or [], data=data)


# ---------------------------------------------------------------- valid files: encodings

@case("utf8.csv", True)
def _utf8(name):
    persons = people(1, NAMES_MIXED, TAGS_MIXED, sg_phone)
    return valid(name, "UTF-8 without BOM, comma, LF (Google Sheets); names in many scripts, an emoji",
                 persons, encode(render(table(persons), ",", "\n"), "utf-8"), "utf-8", ",")


@case("utf8_bom.csv", True)
def _utf8_bom(name):
    persons = people(2, NAMES_MIXED[::-1], TAGS_MIXED, tw_phone, date_sep="/")
    return valid(name, "UTF-8 with BOM, comma, CRLF (Excel 'CSV UTF-8'); YYYY/MM/DD birthdays",
                 persons, encode(render(table(persons), ",", "\r\n"), "utf-8-sig"), "utf-8-sig", ",")


@case("utf16le_unicode_text.txt", True)
def _utf16le(name):
    persons = people(3, NAMES_MIXED, TAGS_MIXED, tw_phone, gender_style=1)
    return valid(name, "UTF-16 LE with BOM, tab, CRLF (Excel 'Unicode text' on Windows); M/F genders",
                 persons, encode(render(table(persons), "\t", "\r\n"), "utf-16-le-bom"), "utf-16", "\t")


@case("utf16be_unicode_text.txt", True)
def _utf16be(name):
    persons = people(4, NAMES_MIXED[5:] + NAMES_MIXED[:5], TAGS_MIXED, jp_phone)
    return valid(name, "UTF-16 BE with BOM, tab, CRLF", persons,
                 encode(render(table(persons), "\t", "\r\n"), "utf-16-be-bom"), "utf-16", "\t")


@case("big5_traditional.csv", True)
def _big5(name):
    persons = people(5, NAMES_TW, TAGS_TW, tw_phone, gender_style=2, date_sep="/", email_domain="example.com.tw")
    headers = {"name": "姓名", "email": "電子郵件", "phone": "手機", "gender": "性別", "birthday": "生日", "tags": "標籤"}
    return valid(name, "Big5/CP950 (Excel on Traditional Chinese Windows): Chinese headers, names, tags, 男/女",
                 persons, encode(render(table(persons, headers=headers), ",", "\r\n"), "cp950"), "cp950", ",")


@case("gb18030_simplified.csv", True)
def _gb18030(name):
    persons = people(6, NAMES_CN, TAGS_CN, cn_phone, gender_style=2, email_domain="example.cn")
    return valid(name, "GB18030/GBK (Excel on Simplified Chinese Windows): Simplified names and tags",
                 persons, encode(render(table(persons), ",", "\r\n"), "gb18030"), "gb18030", ",")


@case("shift_jis_japanese.csv", True)
def _shift_jis(name):
    persons = people(7, NAMES_JP, TAGS_JP, jp_phone, date_sep="/", email_domain="example.jp")
    return valid(name, "Shift_JIS/CP932 (Excel on Japanese Windows): Japanese names, kana and kanji tags",
                 persons, encode(render(table(persons), ",", "\r\n"), "cp932"), "cp932", ",")


# ---------------------------------------------------------------- valid files: dialects

@case("semicolon.csv", True)
def _semicolon(name):
    persons = people(8, [n.replace("Zoë Müller", "Müller, Zoë") for n in NAMES_MIXED], TAGS_MIXED, sg_phone)
    return valid(name, "semicolon (Excel with a comma decimal locale); a comma inside a name, unquoted",
                 persons, encode(render(table(persons), ";", "\r\n"), "utf-8-sig"), "utf-8-sig", ";")


@case("tab.tsv", True)
def _tab(name):
    persons = people(9, NAMES_MIXED, TAGS_MIXED, tw_phone)
    return valid(name, "UTF-8 tab-separated, LF", persons, encode(render(table(persons), "\t", "\n"), "utf-8"),
                 "utf-8", "\t")


@case("pipe.txt", True)
def _pipe(name):
    persons = people(10, NAMES_TW, TAGS_TW, tw_phone)
    return valid(name, "pipe-separated partner-system export, UTF-8, LF", persons,
                 encode(render(table(persons), "|", "\n"), "utf-8"), "utf-8", "|")


def _quoted_people(file_no: int) -> list[dict]:
    persons = people(file_no, NAMES_MIXED[:24], TAGS_MIXED, sg_phone)
    persons[1]["name"] = 'Wang "Tony" Da-Wei'  # doubled quotes
    persons[2]["name"] = "Müller, Zoë"  # the delimiter inside a quoted cell
    persons[4]["name"] = "陳美玲\n(Mei-Ling Chen)"  # Alt+Enter in an Excel cell: LF inside a CRLF file
    persons[7]["name"] = 'Lim "Ah Boy"\nKok Wah, Jr.'  # quotes, newline and delimiter together
    persons[8]["tags_raw"] = "VIP,\n新客戶"  # a line break between tags
    persons[8]["tags"] = sorted(["VIP", "新客戶"])
    persons[12]["name"] = "Sarah\n\nChua"  # a blank line inside a cell
    return persons


def _cr_cells(persons: list[dict]) -> list[dict]:
    """The only line break classic Mac Excel knows is CR, in cells too; the import stores
    every in-cell break as "\\n", so the expected values keep theirs."""
    return [{**p, "name": p["name"].replace("\n", "\r"), "tags_raw": p["tags_raw"].replace("\n", "\r")}
            for p in persons]


@case("quoted_multiline.csv", True)
def _quoted(name):
    persons = _quoted_people(11)
    return valid(name, "quoted cells with the delimiter, doubled quotes and line breaks inside, CRLF records",
                 persons, encode(render(table(persons), ",", "\r\n"), "utf-8-sig"), "utf-8-sig", ",")


@case("cr_only.csv", True)
def _cr_only(name):
    persons = _quoted_people(12)
    data = encode(render(table(_cr_cells(persons)), ",", "\r"), "utf-8")
    assert b"\n" not in data
    return valid(name, "CR-only line ends (classic Mac Excel), line breaks inside quoted cells as CR",
                 persons, data, "utf-8", ",")


@case("lf_big5_semicolon.csv", True)
def _lf_big5(name):
    persons = people(13, NAMES_TW[::-1], TAGS_TW, tw_phone, gender_style=2)
    headers = {"name": "名稱", "phone": "電話"}
    return valid(name, "Big5 with LF and semicolons, headers 名稱/電話", persons,
                 encode(render(table(persons, headers=headers), ";", "\n"), "cp950"), "cp950", ";")


# ---------------------------------------------------------------- valid files: headers

@case("chinese_headers.csv", True)
def _chinese_headers(name):
    persons = people(14, NAMES_TW, TAGS_TW, tw_phone, gender_style=2, date_sep="/")
    headers = {"name": "姓名", "email": "電子郵件", "phone": "電話", "gender": "性別", "birthday": "生日", "tags": "標籤"}
    columns = ("user_id", "name", "email", "phone", "gender", "birthday", "tags")
    return valid(name, "Chinese headers 姓名 電子郵件 電話 性別 生日 標籤, UTF-8 with BOM", persons,
                 encode(render(table(persons, columns, headers), ",", "\r\n"), "utf-8-sig"), "utf-8-sig", ",",
                 columns)


@case("messy_headers.csv", True)
def _messy_headers(name):
    persons = people(15, NAMES_MIXED, TAGS_MIXED, sg_phone, gender_style=1)
    headers = {"user_id": "line user id", "name": "NAME", "email": " EMAIL ", "phone": "phone ",
               "gender": "GENDER", "birthday": "Birth day", "tags": " tags", "vip": "vip level", "points": "POINTS"}
    return valid(name, "mixed-case and extra-space headers ('line user id', ' EMAIL ', 'Birth day', 'vip level')",
                 persons, encode(render(table(persons, headers=headers), ",", "\n"), "utf-8"), "utf-8", ",")


@case("attribute_keys.csv", True)
def _attribute_keys(name):
    persons = people(16, NAMES_TW, TAGS_TW, tw_phone)
    headers = {"vip": "vip_level", "points": "points"}
    return valid(name, "custom attributes by key instead of label", persons,
                 encode(render(table(persons, headers=headers), ",", "\n"), "utf-8"), "utf-8", ",")


# ---------------------------------------------------------------- valid files: xlsx

@case("numeric_phones.xlsx", True)
def _xlsx(name):
    import openpyxl

    persons = people(17, NAMES_TW[:12] + NAMES_JP[:8] + NAMES_MIXED[:6], TAGS_TW, tw_phone)
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "聯絡人"
    ws.append(["LINE User ID", "姓名", "手機", "生日", "性別", "標籤", "VIP Level", "Points"])
    for n, p in enumerate(persons):
        born = datetime.date.fromisoformat(p["birthday"])
        phone = int(p["phone"]) if n % 2 == 0 else float(p["phone"])  # typed as a number, as int and float
        birthday = born if n % 3 else datetime.datetime.combine(born, datetime.time())  # a real date cell
        ws.append([p["user_id"], p["name"], phone, birthday, p["gender"], p["tags_raw"], p["vip"], p["points"]])
        ws.cell(row=n + 2, column=3).number_format = "0"
        ws.cell(row=n + 2, column=4).number_format = "yyyy/mm/dd"
    second = wb.create_sheet("說明")  # only the first sheet counts
    second.append(["這一頁不會匯入"])
    buf = io.BytesIO()
    wb.save(buf)
    columns = ("user_id", "name", "phone", "birthday", "gender", "tags", "vip", "points")
    return valid(name, ".xlsx (first sheet) with phones typed as numbers (int and float) and real date cells",
                 persons, buf.getvalue(), "xlsx", None, columns)


# ---------------------------------------------------------------- rejected files

def _small(file_no: int, count: int = 25, names=NAMES_MIXED, phone=sg_phone) -> list[dict]:
    return people(file_no, names[:count], TAGS_MIXED, phone)


@case("binary.dat", False)
def _binary(name):
    rng = random.Random(100)
    return rejected(name, "random binary bytes (an image or executable renamed .csv)",
                    bytes(rng.randrange(256) for _ in range(4096)), "not_a_table", None)


@case("document.pdf", False)
def _pdf(name):
    body = (b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
            b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")
    return rejected(name, "a PDF", body, "not_a_table", None)


@case("contacts.zip", False)
def _zip(name):
    persons = _small(101)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("contacts.csv", render(table(persons)))
    return rejected(name, "a zip archive holding a CSV (not an .xlsx)", buf.getvalue(), "not_a_table", None)


@case("invalid_utf8_row30.csv", False)
def _invalid_utf8(name):
    persons = people(102, NAMES_TW + NAMES_TW[:9], TAGS_TW, tw_phone)
    lines = render(table(persons), ",", "\n").encode("utf-8").split(b"\n")
    # line 30: the name's last character cut in half, as a truncating partner system leaves it
    name_bytes = persons[28]["name"].encode("utf-8")
    lines[29] = lines[29].replace(name_bytes, name_bytes[:-1] + b"\xff", 1)
    return rejected(name, "UTF-8 with an invalid byte sequence on line 30", b"\n".join(lines),
                    "encoding_undetectable", 30)


@case("empty.csv", False)
def _empty(name):
    return rejected(name, "an empty file (0 bytes)", b"", "file_empty", None)


@case("header_only.csv", False)
def _header_only(name):
    return rejected(name, "the header and no data rows", encode(render(table([])), "utf-8-sig"), "file_empty", None)


@case("unclosed_quote.csv", False)
def _unclosed_quote(name):
    persons = _small(103)
    text = render(table(persons), ",", "\r\n").split("\r\n")
    text[6] = text[6].replace(persons[5]["name"], '"' + persons[5]["name"], 1)  # line 7 opens a quote
    return rejected(name, "a quote opened on line 7 and never closed", encode("\r\n".join(text), "utf-8"),
                    "malformed_csv", 7, ["line 7"])


@case("huge_cell.csv", False)
def _huge_cell(name):
    persons = _small(104)
    persons[3]["tags_raw"] = "VIP," + "x" * 20_000  # line 5: a pasted blob far over any sane cell
    return rejected(name, "a 20,000-character cell on line 5", encode(render(table(persons)), "utf-8"),
                    "value_too_long", 5)


@case("name_too_long.csv", False)
def _name_too_long(name):
    persons = _small(105)
    persons[9]["name"] = "陳" * 256  # line 11: over the 255-character name limit
    return rejected(name, "a 256-character name on line 11", encode(render(table(persons)), "utf-8"),
                    "value_too_long", 11, ["255"])


@case("unknown_column.csv", False)
def _unknown_column(name):
    persons = _small(106)
    return rejected(name, "a misspelt header 'Emial'",
                    encode(render(table(persons, headers={"email": "Emial"})), "utf-8"), "unknown_column", 1,
                    ["Emial", "did you mean", "'Email'"])


@case("duplicate_column.csv", False)
def _duplicate_column(name):
    persons = _small(107)
    rows = table(persons, ("user_id", "name", "phone", "email"))
    rows[0].append("手機")  # the same field twice: Phone and its Chinese alias
    for r, p in zip(rows[1:], persons):
        r.append(p["phone_raw"])
    return rejected(name, "the phone column twice ('Phone' and '手機')", encode(render(rows), "utf-8"),
                    "duplicate_column", 1, ["手機"])


@case("missing_user_id_column.csv", False)
def _missing_user_id(name):
    persons = _small(108)
    columns = ("name", "email", "phone", "tags")
    return rejected(name, "no LINE User ID column", encode(render(table(persons, columns)), "utf-8"),
                    "missing_required_column", 1, ["LINE User ID"])


@case("phone_scientific.csv", False)
def _phone_scientific(name):
    persons = _small(109, phone=tw_phone)
    persons[5]["phone_raw"] = "8.86911E+11"  # line 7: Excel showed the number, then saved what it showed
    return rejected(name, "a phone in scientific notation on line 7", encode(render(table(persons)), "utf-8"),
                    "phone_scientific_notation", 7, ["8.86911E+11"])


@case("phone_leading_zero.csv", False)
def _phone_leading_zero(name):
    persons = _small(110, names=NAMES_TW, phone=tw_phone)
    persons[1]["phone_raw"] = "0911223344"  # line 3: the national form
    return rejected(name, "a Taiwanese phone in national form on line 3", encode(render(table(persons)), "cp950"),
                    "phone_not_international", 3, ["0911223344", "886911223344"])


@case("invalid_user_id.csv", False)
def _invalid_user_id(name):
    persons = _small(111)
    persons[8]["user_id"] = persons[8]["user_id"].upper()  # line 10: "U" + upper-case hex
    return rejected(name, "an upper-cased LINE User ID on line 10", encode(render(table(persons)), "utf-8"),
                    "invalid_user_id", 10)


@case("error_after_multiline.csv", False)
def _error_after_multiline(name):
    persons = _quoted_people(112)
    # lines: header 1; rows 2..; persons[4] spans 2 lines, [7] 2, [8] 2, [12] 3 -> +5 lines
    persons[15]["email_raw"] = "mei.ling@@example"  # record 17 (header = 1) starts on line 17 + 5 = 22
    return rejected(name, "an invalid email on line 22, after cells with line breaks (CRLF file)",
                    encode(render(table(persons), ",", "\r\n"), "utf-8-sig"), "invalid_email", 22)


@case("error_after_multiline_cr.csv", False)
def _error_after_multiline_cr(name):
    persons = _quoted_people(113)
    persons[20]["user_id"] = "U12345"  # record 22 starts on line 22 + 5 = 27
    data = encode(render(table(_cr_cells(persons)), ",", "\r"), "utf-8")
    assert b"\n" not in data
    return rejected(name, "an invalid user id on line 27, after cells with line breaks (CR-only file)",
                    data, "invalid_user_id", 27)


@case("big5_bad_email.csv", False)
def _big5_bad_email(name):
    persons = people(114, NAMES_TW, TAGS_TW, tw_phone, gender_style=2)
    persons[20]["email_raw"] = "陳怡君@"  # line 22
    headers = {"name": "姓名", "email": "電子郵件", "tags": "標籤"}
    return rejected(name, "a Big5 file with an invalid email on line 22",
                    encode(render(table(persons, headers=headers)), "cp950"), "invalid_email", 22, ["陳怡君@"])


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT
    built = build(target)
    print(f"{len(built)} files ({sum(c.valid for c in built)} valid) and {MANIFEST} written to {target}")
