"""Cell normalisers for the import file (docs/design.md#the-import-file).

Each normaliser takes one non-empty, already stripped cell and returns a Result:
the value to store, or an error code from errors.CODES with its message params.
The row, column and raw value of the Issue are the caller's to add.

A column these functions convert is judged here and only here, with all of its rules
and their constants: email, phone, gender, birthday, tags, and number, date, boolean
and select attributes. The columns kept as written (User ID, name, text attributes,
the binding columns) are the Great Expectations suite's (validation.py).
"""
from __future__ import annotations

import datetime
import functools
import math
import os
import subprocess
import sys
import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal

import phonenumbers
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata, region_code_for_country_code
from phonenumbers.phonenumberutil import ValidationResult, _test_number_length
from email_validator import EmailNotValidError, validate_email

EMAIL_LIMIT = 254  # RFC 5321 path limit; email-validator would report it as bad syntax
TAG_LIMIT = 50
PHONE_CACHE_SIZE = 1 << 16
PARALLEL_PHONES = 50_000  # fewer distinct values are checked in-process: a helper costs ~0.3 s
MAX_PHONE_HELPERS = 3


@dataclass(frozen=True)
class Result:
    value: object | None  # the normalised value when ok, else None
    code: str | None = None  # error code from errors.CODES when not ok
    params: dict = field(default_factory=dict)  # shared by cached phone results: do not mutate
    warning: str | None = None  # a warning code from errors.CODES for a value taken but changed

    @property
    def ok(self) -> bool:
        return self.code is None


def _too_long(limit: int) -> Result:
    return Result(None, "value_too_long", {"limit": limit})


# The common address: an ASCII dot-atom local part. Its domain is checked by
# email-validator once per distinct domain (domains repeat: gmail.com, ...), which
# turns ~40 µs per address into ~2 µs; anything else takes the full check.
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
LOCAL_PART_LIMIT = 64


def normalise_email(raw: str) -> Result:
    if len(raw) > EMAIL_LIMIT:
        return _too_long(EMAIL_LIMIT)
    local, at, domain = raw.rpartition("@")
    if at and raw.isascii() and len(local) <= LOCAL_PART_LIMIT and _DOT_ATOM.fullmatch(local):
        checked = _check_domain(domain)
        return Result(f"{local}@{checked}".lower()) if checked else Result(None, "invalid_email")
    return _validate_email(raw)


@functools.lru_cache(maxsize=1 << 14)
def _check_domain(domain: str) -> str | None:
    result = _validate_email("a@" + domain)
    return result.value.partition("@")[2] if result.ok else None


def _validate_email(raw: str) -> Result:
    try:
        info = validate_email(raw, check_deliverability=False)
    except EmailNotValidError:
        return Result(None, "invalid_email")
    # The whole address, local part included: contacts are matched on it, and mail
    # providers treat the local part case-insensitively in practice.
    return Result(info.normalized.lower())


# ---------------------------------------------------------------- phone

# Excel turns long digit strings into floats and shows them like 8.86911E+11; the
# digits are gone, so this is reported as such rather than as a merely bad number.
_SCIENTIFIC = re.compile(r"[+-]?[0-9]+(?:[.,][0-9]*)?[eE][+-]?[0-9]+")
_PHONE_NOISE = str.maketrans("", "", "+ -.()")


def normalise_phone(raw: str, default_region: str | None = None) -> Result:
    return _normalise_phone(raw, default_region, _check_phone_digits)


def normalise_phones(values: Iterable[str], default_region: str | None = None) -> list[Result]:
    """normalise_phone for a whole column, checking each distinct value once.

    phonenumbers.parse costs ~16 µs, so a column of many distinct phones is shared
    with helper processes (`python -m contact_import.normalisation`, one per spare
    core) while this process checks its own share. Plain subprocesses rather than
    multiprocessing: that would re-import the caller's __main__ (a DAG file) or fork
    a threaded Airflow task.
    """
    values = list(values)
    distinct = list(dict.fromkeys(values))
    multiline = [v for v in distinct if "\n" in v or "\r" in v]
    if multiline:  # never valid, and they would break the helpers' one-per-line protocol
        distinct = [v for v in distinct if not ("\n" in v or "\r" in v)] + multiline
    helpers = min((os.cpu_count() or 1) - 1, MAX_PHONE_HELPERS)
    if len(distinct) < PARALLEL_PHONES or helpers < 1:
        results = _check_batch(distinct, default_region)
    else:
        clean = len(distinct) - len(multiline)
        size = -(-clean // (helpers + 1))
        # this process takes the first share and any multi-line values at the end
        batches = [distinct[:size] + distinct[clean:]]
        batches += [distinct[i:min(i + size, clean)] for i in range(size, clean, size)]
        with ThreadPoolExecutor(len(batches) - 1) as pool:
            others = [pool.submit(_check_in_helper, batch, default_region) for batch in batches[1:]]
            results = _check_batch(batches[0], default_region)
            for future in others:
                results += future.result()
        distinct = [v for batch in batches for v in batch]
    by_value = dict(zip(distinct, results))
    return [by_value[v] for v in values]


def _check_in_helper(values: list[str], default_region: str | None) -> list[Result]:
    # One value per line (the caller keeps values with line breaks in-process); one
    # answer per line: "=digits", or "!code" with the fixed number, if any, after a tab.
    proc = subprocess.run([sys.executable, "-m", __name__, default_region or ""], input="\n".join(values),
                          capture_output=True, text=True, encoding="utf-8", check=True)
    return [Result(line[1:]) if line[0] == "=" else _helper_error(line) for line in proc.stdout.splitlines()]


def _helper_error(line: str) -> Result:
    code, _, fix = line[1:].partition("\t")
    return _with_fix(code, fix or None) if code in FIXABLE else Result(None, code)


def _serve_helper() -> None:
    region = sys.argv[1] or None
    answers = (f"={r.value}" if r.ok else f"!{r.code}\t{r.params.get('fix') or ''}"
               for r in _check_batch(sys.stdin.read().split("\n"), region))
    sys.stdout.write("\n".join(answers) + "\n")


# The phone errors whose number the workspace's region completes: written the local way,
# or a number cell that dropped the leading 0.
FIXABLE = ("phone_not_international", "phone_leading_zero_lost")


def _with_fix(code: str, fix: str | None) -> Result:
    """A FIXABLE error: its message suggests `fix` (the number in international form, or
    None when the region does not make it a possible number); `completed` takes it."""
    # Digits only in the suggestion, no words, so the same text fits both languages.
    return Result(None, code, {"suggestion": f" ({fix})" if fix else "", "fix": fix})


def completed(result: Result) -> Result:
    """The import option "complete local numbers with the workspace's region": a FIXABLE
    error with a fix becomes that number, warned as `phone_completed`, never silently.
    A number the region does not make a possible one stays an error."""
    fix = result.params.get("fix") if result.code in FIXABLE else None
    return Result(fix, warning="phone_completed", params={"completed": fix}) if fix else result


def _check_batch(values: list[str], default_region: str | None) -> list[Result]:
    # The caller already dedupes, so the uncached check avoids the LRU's bookkeeping
    # and keeps a big column from evicting the single-value cache.
    check = _check_phone_digits.__wrapped__
    return [_normalise_phone(raw, default_region, check) for raw in values]


def _normalise_phone(raw: str, default_region: str | None, check) -> Result:
    if _SCIENTIFIC.fullmatch(raw):
        return Result(None, "phone_scientific_notation")
    digits = raw.translate(_PHONE_NOISE)
    # isdigit() alone would also take full-width and other Unicode digits.
    if not (digits.isascii() and digits.isdigit()):
        return Result(None, "invalid_phone")
    # The region matters for the 0-leading suggestion, and for a number without "+"
    # that may have lost its leading 0; "+" says the number is international. Leaving
    # it out of the key otherwise lets every workspace share the cached answers.
    local = digits[0] == "0" or not raw.startswith("+")
    region = default_region.upper() if default_region and local else None
    return check(digits, region)


@functools.lru_cache(maxsize=PHONE_CACHE_SIZE)
def _check_phone_digits(digits: str, region: str | None) -> Result:
    if digits[0] == "0":
        return _with_fix("phone_not_international", _fix_local(digits, region))
    if region is not None:
        lost = _lost_leading_zero(digits, region)
        if lost is not None:
            return lost
    if not 8 <= len(digits) <= 15:
        return Result(None, "invalid_phone")
    possible = _possible_without_parsing(digits)
    if possible is not None:
        return possible
    try:
        number = phonenumbers.parse("+" + digits)
    except phonenumbers.NumberParseException:  # e.g. no such country code
        return Result(None, "invalid_phone")
    if not phonenumbers.is_possible_number(number):
        return Result(None, "invalid_phone")
    # Stored in canonical form: "+44 (0)20 ..." keeps a national 0 that parse drops,
    # and "4402079460958" is not a number a message could be sent to.
    return Result(f"{number.country_code}{phonenumbers.national_significant_number(number)}")


_POSSIBLE = (ValidationResult.IS_POSSIBLE, ValidationResult.IS_POSSIBLE_LOCAL_ONLY)


@functools.lru_cache(maxsize=None)
def _calling_code(code: int) -> tuple[PhoneMetadata, re.Pattern | None] | None:
    if code not in COUNTRY_CODE_TO_REGION_CODE:
        return None
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, region_code_for_country_code(code))
    prefix = metadata.national_prefix_for_parsing
    return metadata, re.compile(prefix) if prefix else None


def _possible_without_parsing(digits: str) -> Result | None:
    """What `_check_phone_digits` answers, for the common case, in a fraction of
    phonenumbers.parse's time (which builds a number object through a dozen regular
    expressions): the country code as parse extracts it, then the possible-length check
    on the rest from phonenumbers' own metadata. None when the rest starts with 0 or with
    the country's national prefix: whether parse strips it is phonenumbers' to decide.
    tests/unit/test_normalisation.py checks it against phonenumbers on every country code."""
    for size in (1, 2, 3):
        found = _calling_code(int(digits[:size]))
        if found is not None:
            break
    else:
        return None
    metadata, national_prefix = found
    national = digits[size:]
    if national[0] == "0" or (national_prefix is not None and national_prefix.match(national)):
        return None
    if _test_number_length(national, metadata) in _POSSIBLE:
        return Result(digits)  # the country code and the national number as they are
    return Result(None, "invalid_phone")


def _lost_leading_zero(digits: str, region: str) -> Result | None:
    """A number cell drops a local number's leading 0 (0912345678 shows as 912345678
    unless its format pads it), and the rest may pass the possible-length check as
    another country's number (+91 2345678) that no real number is. Digits without "+"
    that are a valid number of the workspace's region once the 0 is put back, and no
    valid number as they are, are therefore rejected with the fix, never stored as the
    other country's; writing "+" in front says the number is international."""
    found = _national_pattern(region)
    # Checked for every such phone, so cheap exits come first: the region's own
    # international form (the usual case; 049x area codes that lost their 0 stay
    # unnoticed), then the national number the digits would be (after a trunk 0, or
    # with Italy's 0 kept) must fit the region's general pattern.
    if found is None or digits.startswith(found[0]):
        return None
    if not found[2].fullmatch(digits if found[1] else "0" + digits):
        return None
    try:
        number = phonenumbers.parse("0" + digits, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    try:
        if phonenumbers.is_valid_number(phonenumbers.parse("+" + digits)):
            # A real number both ways (a German 15123456789 is also a US one): kept as
            # written, the international form being the contract. Rejecting these would
            # refuse most foreign numbers in regions with open numbering plans (DE).
            return None
    except phonenumbers.NumberParseException:
        pass
    fixed = f"{number.country_code}{phonenumbers.national_significant_number(number)}"
    checked = _check_phone_digits.__wrapped__(fixed, None)
    return _with_fix("phone_leading_zero_lost", checked.value if checked.ok else None)


@functools.lru_cache(maxsize=None)
def _national_pattern(region: str) -> tuple[str, bool, re.Pattern] | None:
    """(the region's country code, whether its trunk prefix is 0, its numbers' general pattern)."""
    metadata = PhoneMetadata.metadata_for_region(region)
    if metadata is None or not metadata.general_desc.national_number_pattern:
        return None
    return (str(metadata.country_code), metadata.national_prefix == "0",
            re.compile(metadata.general_desc.national_number_pattern))


def _fix_local(digits: str, region: str | None) -> str | None:
    """A number written the local way (0 first) in international form, by the region's
    numbering plan; None when the region does not make it a possible number."""
    if not region:
        return None
    try:
        number = phonenumbers.parse(digits, region)
    except phonenumbers.NumberParseException:  # including an unknown region
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    fixed = f"{number.country_code}{phonenumbers.national_significant_number(number)}"
    # Never suggest (or complete to) something this module would then reject.
    checked = _check_phone_digits.__wrapped__(fixed, None)
    return checked.value if checked.ok else None


# ---------------------------------------------------------------- gender, date, tags

_GENDERS = {
    "male": "male", "m": "male", "男": "male",
    "female": "female", "f": "female", "女": "female",
    "other": "other", "其他": "other",
}


def normalise_gender(raw: str) -> Result:
    gender = _GENDERS.get(raw.lower())
    return Result(gender) if gender else Result(None, "invalid_gender")


# One separator throughout: "1990-01/05" is more likely a typo than a date.
_DATE = re.compile(r"([0-9]{4})([-/])([0-9]{1,2})\2([0-9]{1,2})")


def _parse_date(raw: str, today: datetime.date | None) -> str | None:
    match = _DATE.fullmatch(raw)
    if not match:
        return None
    try:
        date = datetime.date(int(match[1]), int(match[3]), int(match[4]))
    except ValueError:  # Feb 30, month 13, ...
        return None
    if date.year < 1900 or date > (today or datetime.date.today()):
        return None
    return date.isoformat()


def normalise_date(raw: str, today: datetime.date | None = None) -> Result:
    iso = _parse_date(raw, today)
    return Result(iso) if iso else Result(None, "invalid_date")


_TAG_SEPARATORS = re.compile("[,，]")


def normalise_tags(raw: str) -> Result:
    tags: dict[str, None] = {}  # an ordered set
    for piece in _TAG_SEPARATORS.split(raw):
        tag = piece.strip()
        if not tag:
            continue
        if len(tag) > TAG_LIMIT:
            return _too_long(TAG_LIMIT)
        tags.setdefault(tag)
    return Result(list(tags))


# ---------------------------------------------------------------- custom attributes

_NUMBER = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?")
_BOOLEANS = {"true": True, "yes": True, "y": True, "1": True, "是": True,
             "false": False, "no": False, "n": False, "0": False, "否": False}


def normalise_attribute(raw: str, type_: str, options: list[str] | None) -> Result:
    """type_: one of workspaces.ATTRIBUTE_TYPES; options: a select attribute's."""
    if type_ == "text":  # kept as written; its length is the GX suite's rule
        return Result(raw)
    if type_ == "number":
        value = _parse_number(raw)
    elif type_ == "date":
        value = _parse_date(raw, None)
    elif type_ == "boolean":
        value = _BOOLEANS.get(raw.lower())
    elif type_ == "select":  # stored as the workspace spells the option; "STRASSE" is "Straße"
        wanted = raw.casefold()
        value = next((o for o in options or () if o.casefold() == wanted), None)
    else:  # a workspace misconfiguration, not something the file can fix
        raise ValueError(f"unknown attribute type {type_!r}")
    if value is None:
        listed = f" (one of: {', '.join(options)})" if type_ == "select" and options else ""
        return Result(None, "invalid_attribute_value", {"type": type_, "options": listed})
    return Result(value)


def _parse_number(raw: str) -> int | float | None:
    # Plain decimals only: "1,234" is 1234 or 1.234 depending on the locale, and
    # "1e5", "nan" or "inf" are spreadsheet accidents rather than values.
    if not _NUMBER.fullmatch(raw):
        return None
    number = Decimal(raw)
    if number == number.to_integral_value():
        return int(number)
    as_float = float(number)
    return as_float if math.isfinite(as_float) else None


if __name__ == "__main__":
    _serve_helper()
