"""detect_encoding (docs/design.md): any common CSV -> a UTF-8 CSV copy.

`to_utf8` streams the upload once to detect its encoding and delimiter from a leading
sample, then once more to write `dest`: UTF-8, delimiter ",", "\\n" line ends, first
column `__row__` = the line in the original file where the record starts (header = 1).

Encoding names reported are the codec actually used to decode, lower-case Python names:
"utf-8", "utf-8-sig" (UTF-8 BOM), "utf-16" / "utf-32" (either BOM), "utf-16-le" /
"utf-16-be" (no BOM, recognised by its zero bytes), otherwise charset-normalizer's guess
widened to the Windows superset Excel really writes: big5 -> "cp950",
gb2312/gbk -> "gb18030", shift_jis -> "cp932", euc_kr -> "cp949".
"""
from __future__ import annotations

import codecs
import collections
import contextlib
import csv
import functools
import io
import os
import zipfile
from dataclasses import dataclass

import charset_normalizer

from .errors import ImportFileError, Issue

SAMPLE_BYTES = 1 << 20
DELIMITERS = (",", ";", "\t", "|")
# A workbook's kind is reported as its encoding (it has no delimiter).
XLSX, XLS, ODS = "xlsx", "xls", "ods"
_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # Excel 97-2003 (.xls), but also .doc, .msg, ...
_ODS_MIMETYPE = b"application/vnd.oasis.opendocument.spreadsheet"
# The csv module's own cap: far above any real cell, so value_too_long is ours to
# report, yet bounded so an unclosed quote cannot swallow a whole large file.
FIELD_LIMIT = 1_000_000
# Limits that keep reading any file in bounded memory (docs/design.md#the-import-file):
# a header of more columns is too_many_columns; a row (one record, its quoted line
# breaks included) of more characters is malformed_csv, read no further than this.
MAX_COLUMNS = 1000
ROW_LIMIT = 4 << 20
BINARY_CONTROL_RATIO = 0.05

_SUPERSETS = {"big5": "cp950", "gb2312": "gb18030", "gbk": "gb18030", "shift_jis": "cp932", "euc_kr": "cp949"}
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),  # before UTF-16: same prefix
         (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_MAGIC = ((b"PK\x03\x04", "zip"), (b"PK\x05\x06", "zip"), (b"%PDF", "pdf"),
          (b"\x1f\x8b", "gzip"),
          (b"\x89PNG", "png"), (b"\xff\xd8\xff", "jpeg"), (b"GIF8", "gif"))
_NOT_GUESSED = ["utf_16", "utf_16_be", "utf_16_le", "utf_32", "utf_32_be", "utf_32_le", "utf_7"]
_LEVEL_ONE = (("big5", b"\xa4\x40", b"\xc6\x7e"), ("gb2312", b"\xb0\xa1", b"\xd7\xf9"),
              ("shift_jis", b"\x88\x9f", b"\x98\x72"))  # the frequently used tier of each
_CJK = ("cp950", "gb18030", "cp932", "cp949")
SCORE_BYTES = 1 << 16
_MARKUP = (("<!doctype html", "html"), ("<html", "html"), ("<?xml", "xml"))
# Tab, line ends, form feed, Ctrl-Z (old DOS EOF) and ESC (ISO-2022) occur in real text.
_CONTROL = bytes(b for b in range(32) if b not in b"\t\n\r\x0c\x1a\x1b") + b"\x7f"
_MARK = "\udfff"  # a lone surrogate: strict decoding never yields one, so it marks the bad byte
codecs.register_error("contact_import.mark", lambda e: (_MARK, e.end))


@dataclass(frozen=True)
class SourceInfo:
    encoding: str
    delimiter: str | None  # None for a workbook
    rows: int  # data rows written (blank rows not counted)
    header: list[str]


def _fail(code: str, row: int | None = None, column: str = "", **params) -> None:
    raise ImportFileError(Issue(code, row=row, column=column, params=params))


def _decodes(data: bytes, codec: str, final: bool) -> bool:
    try:
        codecs.getincrementaldecoder(codec)().decode(data, final=final)
        return True
    except UnicodeDecodeError:
        return False


def _control_ratio(data: bytes | str) -> float:
    kept = data.translate(dict.fromkeys(_CONTROL)) if isinstance(data, str) else data.translate(None, _CONTROL)
    return (len(data) - len(kept)) / max(len(data), 1)


def _zip_kind(path) -> str:
    # Only the central directory and the small `mimetype` entry are read, so this is
    # cheap even for a large workbook.
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            if any(n.startswith("xl/") for n in names):
                return XLSX
            # read no more of `mimetype` than the type it should name (it could inflate to gigabytes)
            if "mimetype" in names:
                with z.open("mimetype") as mimetype:
                    if mimetype.read(len(_ODS_MIMETYPE) + 2).strip() == _ODS_MIMETYPE:
                        return ODS
    except (zipfile.BadZipFile, OSError):
        pass
    return "zip"


def _workbook_kind(path, sample: bytes) -> str | None:
    if sample.startswith(b"PK\x03\x04"):
        kind = _zip_kind(path)
        return kind if kind in (XLSX, ODS) else None
    # Any OLE2 file goes to the workbook reader, which refuses one holding no workbook.
    return XLS if sample.startswith(_OLE2) else None


def _bomless_utf16(sample: bytes) -> str | None:
    # Mostly-ASCII text in UTF-16 has a zero in every other byte, on one side only.
    even, odd = sample[0::2], sample[1::2]
    if len(odd) < 8:
        return None
    zeros_even, zeros_odd = even.count(0) / len(even), odd.count(0) / len(odd)
    if zeros_odd > 0.2 and zeros_even < 0.02:
        return "utf-16-le"
    if zeros_even > 0.2 and zeros_odd < 0.02:
        return "utf-16-be"
    return None


def _error_line(path, codec: str) -> int:
    """Line of the first undecodable byte (a line past the end when there is none): a
    cold path, so a second pass is fine."""
    decoder = codecs.getincrementaldecoder(codec)(errors="contact_import.mark")
    breaks, last = 0, ""
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 16)
            text = decoder.decode(chunk, final=not chunk)
            bad = text.find(_MARK)
            text = text[:bad] if bad >= 0 else text
            breaks += text.count("\n") + text.count("\r") - text.count("\r\n")
            if last == "\r" and text.startswith("\n"):
                breaks -= 1  # a CRLF split across chunks
            last = text[-1:] or last
            if bad >= 0 or not chunk:
                return breaks + 1


def _utf8_text_before(sample: bytes) -> bool:
    """Whether the bytes before the first invalid UTF-8 byte hold real UTF-8 East Asian
    text: two or more three-byte characters, nearly all common ones. Legacy CJK bytes
    rarely form even one three-byte sequence, and then a rare character."""
    try:
        sample.decode("utf-8")
        return False
    except UnicodeDecodeError as exc:
        wide = [ch for ch in sample[:exc.start].decode("utf-8") if ch >= "\u0800"]
    return len(wide) >= 2 and sum(map(_is_common, wide)) >= 0.8 * len(wide)


def _undetectable(path, candidates) -> None:
    """No encoding reads the whole file: most often two exports glued together (UTF-8
    rows, then Big5 rows). The line named is where the encoding that reads furthest
    into the file meets its first bad byte, which is where the other part begins."""
    # max keeps the first of equal lines: the candidates' order breaks ties (gb18030
    # also "reads" Big5 bytes, as other characters)
    line, codec = max(((_error_line(path, codec), codec) for codec in dict.fromkeys(candidates)),
                      key=lambda found: found[0])
    _fail("encoding_undetectable", row=line, detail=f"not valid {codec} from this line on")


def _guess(path, sample: bytes, at_eof: bool) -> str:
    # Strict UTF-8 first: most uploads are UTF-8 and detectors misjudge short samples.
    if _decodes(sample, "utf-8", at_eof):
        return "utf-8"
    text = sample.decode("utf-8", "replace")
    bad = text.count("\ufffd")
    good = len(text) - len(text.encode("ascii", "ignore")) - bad
    if good >= 20 and good >= 10 * bad:
        # UTF-8 with a few stray bytes: any legacy guess would garble every other name.
        _fail("encoding_undetectable", row=_error_line(path, "utf-8"), detail="invalid UTF-8")
    if _utf8_text_before(sample):
        # Rows of UTF-8 East Asian text, then bytes that are not UTF-8: two exports glued
        # together. A single-byte codec would read both, garbled, however short the file.
        _fail("encoding_undetectable", row=_error_line(path, "utf-8"), detail="not valid utf-8 from this line on")
    # Cut at a line end: "\n" is never part of a multi-byte character in these encodings.
    cut = sample if at_eof else sample[: sample.rfind(b"\n") + 1] or sample
    # UTF-16/32 are settled above by BOM or zero bytes; the detector only misreads CJK as them.
    matches = charset_normalizer.from_bytes(cut, cp_exclusion=_NOT_GUESSED)
    # (codec, -chaos, coherence, could be cp1252): between Western codecs the detector
    # cannot tell apart, cp1252 (what Excel writes) is the likelier.
    candidates = [(m.encoding, -m.chaos, m.coherence, "cp1252" in m.could_be_from_charset) for m in matches]
    # It also drops right CJK answers on short or repetitive text, so offer those too,
    # ranked below all of its own picks.
    offered = {_SUPERSETS.get(n, n) for n in (codecs.lookup(c[0]).name for c in candidates)}
    candidates += [(c, -1.0, 0.0, False) for c in _CJK if c not in offered and _decodes(cut, c, at_eof)]
    if not candidates:
        _undetectable(path, ("utf-8", *_CJK))
    # On short samples the detector often ranks a wrong CJK codec first: the right one
    # decodes into common characters, a wrong one into rare ones.
    head = cut[:SCORE_BYTES]
    best = max(candidates, key=lambda c: (_cjk_score(head.decode(c[0], "ignore")), *c[1:]))
    detected = "cp1252" if best[3] else codecs.lookup(best[0]).name
    for codec in (_SUPERSETS.get(detected, detected), detected):
        if _decodes(cut, codec, at_eof):
            return codec
    _undetectable(path, ("utf-8", *_CJK))


@functools.lru_cache(maxsize=1 << 14)
def _is_common(ch: str) -> bool:
    """Kana, CJK punctuation, KS X 1001 hangul, or a level-1 Big5 / GB2312 / JIS ideograph."""
    o = ord(ch)
    if 0x3000 <= o <= 0x30FF or 0xFF01 <= o <= 0xFF5E:
        return True
    if 0xAC00 <= o <= 0xD7A3:
        return len(ch.encode("euc_kr", "ignore")) == 2  # rarer syllables take an 8-byte make-up sequence
    if 0x4E00 <= o <= 0x9FFF:
        return any(low <= ch.encode(codec, "ignore") <= high for codec, low, high in _LEVEL_ONE)
    return False


def _cjk_score(text: str) -> float:
    """Share of common East Asian characters, counted only when it is decisive: a wrong
    decoding lands on a common character about 40% of the time, a right one nearly always."""
    counts = collections.Counter(text)
    wide = sum(n for ch, n in counts.items() if ch >= "\u3000")
    share = sum(n for ch, n in counts.items() if ch >= "\u3000" and _is_common(ch)) / max(wide, 1)
    return round(share, 2) if wide >= 4 and share >= 0.8 else 0.0


def _detect(path, sample: bytes, at_eof: bool) -> tuple[str, str]:
    """Return (codec, decoded sample) or raise not_a_table / encoding_undetectable."""
    for magic, kind in _MAGIC:
        if sample.startswith(magic):
            _fail("not_a_table", detail=_zip_kind(path) if kind == "zip" else kind)
    codec = next((c for bom, c in _BOMS if sample.startswith(bom)), None) or _bomless_utf16(sample)
    if codec is None:
        if b"\x00" in sample or _control_ratio(sample) > BINARY_CONTROL_RATIO:
            _fail("not_a_table", detail="binary")
        codec = _guess(path, sample, at_eof)
    text = codecs.getincrementaldecoder(codec)(errors="replace").decode(sample, final=at_eof)
    if codec.startswith("utf-") and _control_ratio(text) > BINARY_CONTROL_RATIO:
        _fail("not_a_table", detail="binary")
    head = text.lstrip("\ufeff \t\r\n")[:20].lower()
    for prefix, kind in _MARKUP:  # an HTML or XML "spreadsheet" saved as .xls / .csv
        if head.startswith(prefix):
            _fail("not_a_table", detail=kind)
    return codec, text


def _sniff_delimiter(text: str, wide: bool) -> str:
    """Most frequent candidate outside quotes on the first non-blank line."""
    counts, in_quotes, content = dict.fromkeys(DELIMITERS, 0), False, False
    for ch in text:
        if ch == '"':
            in_quotes = not in_quotes
        elif in_quotes:
            content = content or not ch.isspace()
        elif ch in "\r\n":
            if content:
                break
            counts = dict.fromkeys(DELIMITERS, 0)  # a blank or delimiters-only line
        elif ch in counts:
            counts[ch] += 1
        elif not ch.isspace():
            content = True
    # Excel's "Unicode text" export is tab-delimited UTF-16, so tab wins ties there.
    order = ("\t", ",", ";", "|") if wide else DELIMITERS
    best = max(order, key=counts.__getitem__)  # max keeps the first of equal counts
    return best if counts[best] else ","


class _RowTooLarge(Exception):
    """A record ran past ROW_LIMIT characters; `text` is its last line read, cut there."""

    def __init__(self, text: str):
        super().__init__()
        self.text = text


def _lines(text_file, used: list[int]):
    """The file's lines for csv.reader, none longer than ROW_LIMIT characters: csv reads a
    whole line, and a file with no line break would otherwise be read whole. `used[0]`
    counts the characters of the record being read; _copy sets it to 0 after each one."""
    readline = text_file.readline
    while line := readline(ROW_LIMIT + 1):
        used[0] += len(line)
        if used[0] > ROW_LIMIT:
            raise _RowTooLarge(line)
        yield line


def _row_too_large(text: str, delimiter: str, row: int, header: list[str] | None) -> None:
    """What a record over ROW_LIMIT is: a header or row of too many columns, or a cell
    too long (most often a quote left open, swallowing the lines after it), or binary
    data such as the NUL bytes a copy cut short leaves."""
    if "\0" in text:
        _fail("not_a_table", row=row, detail="binary")
    if text.count(delimiter) >= MAX_COLUMNS:
        if header is None:
            _fail("too_many_columns", row=row, limit=MAX_COLUMNS)
        _fail("malformed_csv", row=row, detail=f"more than {MAX_COLUMNS} cells but the header has {len(header)}")
    if max(map(len, text.split(delimiter))) > FIELD_LIMIT:
        _fail("malformed_csv", row=row, detail=f"a cell is over {FIELD_LIMIT} characters (a quote left open?)")
    _fail("malformed_csv", row=row,
          detail=f"a row is over {ROW_LIMIT} characters (a quote left open, or line breaks missing?)")


def _copy(reader, writer, max_cell_chars: int, path, codec: str,
          used: list[int] | None = None, delimiter: str = ",") -> tuple[list[str], int]:
    header: list[str] | None = None
    rows = 0
    while True:
        start = reader.line_num + 1  # csv counts physical lines, embedded newlines included
        if used is not None:
            used[0] = 0
        try:
            cells = next(reader, None)
        except UnicodeDecodeError:
            _fail("encoding_undetectable", row=_error_line(path, codec), detail=f"not valid {codec}")
        except _RowTooLarge as e:
            _row_too_large(e.text, delimiter, start, header)
        except csv.Error as e:
            if "end of data" in str(e):
                _fail("malformed_csv", row=start, detail="a quoted cell starting on this line is never closed")
            if "field limit" in str(e):
                _fail("malformed_csv", row=start,
                      detail=f"a cell is over {csv.field_size_limit()} characters (a quote left open?)")
            _fail("malformed_csv", row=reader.line_num, detail=str(e))
        if cells is None:
            break
        text = "".join(cells)
        if "\0" in text:  # a NUL byte is no text: binary data, or the file cut short or padded
            _fail("not_a_table", row=start, detail="binary")
        if not any(map(str.strip, cells)):  # map, not a generator: this loop runs once per row
            continue
        if header is None:
            header = [c.strip() for c in cells]
            header[0] = header[0].lstrip("\ufeff").strip()
            while not header[-1]:  # trailing delimiters, as Excel leaves after formatted columns
                header.pop()
            if len(header) > MAX_COLUMNS:
                _fail("too_many_columns", row=start, limit=MAX_COLUMNS)
            writer.writerow(["__row__", *header])
            continue
        width = len(header)
        if len(cells) > width and any(map(str.strip, cells[width:])):
            used_cells = max(i for i, c in enumerate(cells) if c.strip()) + 1
            count = used_cells if used_cells <= MAX_COLUMNS else f"more than {MAX_COLUMNS}"
            _fail("malformed_csv", row=start, detail=f"{count} cells but the header has {width}")
        cells = cells[:width] + [""] * (width - len(cells))
        # csv.writer leaves a lone CR unquoted (it only quotes the line terminator), which
        # would split the record: store every in-cell line break as "\n".
        if "\r" in text:
            cells = [c.replace("\r\n", "\n").replace("\r", "\n") for c in cells]
        if max(map(len, cells)) > max_cell_chars:
            name = next(name for name, cell in zip(header, cells) if len(cell) > max_cell_chars)
            _fail("value_too_long", row=start, column=name, limit=max_cell_chars)
        writer.writerow([start, *cells])
        rows += 1
    if header is None or rows == 0:
        _fail("file_empty")
    return header, rows


def to_utf8(src: str | os.PathLike, dest: str | os.PathLike, *, max_cell_chars: int = 10_000) -> SourceInfo:
    """Write `src` to `dest` as UTF-8 CSV with a leading `__row__` column; see the module doc."""
    with open(src, "rb") as f:
        sample = f.read(SAMPLE_BYTES)
        at_eof = not f.read(1)
    if not sample:
        _fail("file_empty")
    workbook = _workbook_kind(src, sample)
    if workbook:
        return _workbook_to_utf8(src, dest, max_cell_chars, workbook)
    codec, text = _detect(src, sample, at_eof)
    delimiter = _sniff_delimiter(text, wide=codec.startswith(("utf-16", "utf-32")))

    tmp = os.fspath(dest) + ".tmp"
    # field_size_limit is process-wide: raise it only for this call.
    old_limit = csv.field_size_limit(max(FIELD_LIMIT, max_cell_chars + 1))
    try:
        with (open(src, "rb") as raw,
              io.TextIOWrapper(raw, encoding=codec, errors="strict", newline="") as fin,
              open(tmp, "w", encoding="utf-8", newline="") as fout):
            # strict: `"ab"cd` is an error rather than silently becoming `abcd`.
            used = [0]
            reader = csv.reader(_lines(fin, used), delimiter=delimiter, strict=True)
            writer = csv.writer(fout, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
            header, rows = _copy(reader, writer, max_cell_chars, src, codec, used, delimiter)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    finally:
        csv.field_size_limit(old_limit)
    return SourceInfo(codec, delimiter, rows, header)


def _workbook_to_utf8(src, dest, max_cell_chars: int, kind: str) -> SourceInfo:
    """The first sheet of a workbook, through the same row checks as a CSV file."""
    from .spreadsheet import WORKBOOK_MEMORY_LIMIT, ChildSheetReader, SheetUnreadable, WorkbookTooLarge

    tmp = os.fspath(dest) + ".tmp"
    try:
        # read in a child process held to WORKBOOK_MEMORY_LIMIT (spreadsheet.py says why)
        reader = ChildSheetReader(src, xlsx_formats=kind == XLSX, max_cell_chars=max_cell_chars)
        try:
            with open(tmp, "w", encoding="utf-8", newline="") as fout:
                writer = csv.writer(fout, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
                header, rows = _copy(reader, writer, max_cell_chars, src, kind)
        except WorkbookTooLarge as exc:
            if kind == XLS:  # at most 65,536 rows of 256 columns: a .xls that needs more is damaged
                _fail("not_a_table", row=reader.line_num or None, detail=f"unreadable {kind} ({exc})")
            _fail("workbook_too_large", row=reader.line_num + 1 if reader.line_num else None,
                  limit=WORKBOOK_MEMORY_LIMIT >> 20)
        except SheetUnreadable as exc:  # a broken workbook, at its start or past its first rows
            _fail("not_a_table", row=reader.line_num or None, detail=f"unreadable {kind} ({exc})")
        finally:
            reader.close()
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    return SourceInfo(kind, None, rows, header)
