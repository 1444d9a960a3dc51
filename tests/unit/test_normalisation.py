import datetime

import pytest

from contact_import import errors
from contact_import.normalisation import (
    Result,
    _check_phone_digits,
    _possible_without_parsing,
    normalise_attribute,
    normalise_date,
    normalise_email,
    normalise_gender,
    normalise_phone,
    normalise_phones,
    normalise_tags,
)

TODAY = datetime.date(2024, 6, 15)


def error(result: Result) -> str | None:
    assert result.value is None or result.ok
    assert result.code is None or result.code in errors.CODES
    return result.code


def message(result: Result, value: str, lang: str = "en", column: str = "") -> str:
    return errors.Issue(result.code, value=value, column=column, params=result.params).message(lang)


# ---------------------------------------------------------------- email

def test_email_lower_cased_whole_address():
    assert normalise_email("Ming.Wang@Example.COM").value == "ming.wang@example.com"


@pytest.mark.parametrize("raw", ["ming", "ming@", "@example.com", "ming@@example.com",
                                 "ming@example", "Ming <ming@example.com>", "mi ng@example.com",
                                 "ming@localhost", "ming@example..com"])
def test_email_invalid(raw):
    assert error(normalise_email(raw)) == "invalid_email"


def test_email_too_long():
    raw = "a" * 64 + "@" + ".".join(["b" * 61] * 3) + ".com"  # 254 chars
    assert len(raw) == 254 and normalise_email(raw).ok
    result = normalise_email("a" + raw)
    assert (result.code, result.params) == ("value_too_long", {"limit": 254})


# ---------------------------------------------------------------- phone

@pytest.mark.parametrize("raw", ["886911223344", "+886911223344", "+886 911 223 344",
                                 "+886-911-223-344", "+886 (911) 223.344", "(886) 911-223-344"])
def test_phone_separators_stripped(raw):
    assert normalise_phone(raw) == Result("886911223344")


@pytest.mark.parametrize("raw,stored", [("85291234567", "85291234567"), ("+65 9123 4567", "6591234567"),
                                        ("60123456789", "60123456789"), ("+81 90-1234-5678", "819012345678")])
def test_phone_other_countries(raw, stored):
    assert normalise_phone(raw).value == stored


def test_phone_national_zero_after_country_code_is_dropped():
    assert normalise_phone("+44 (0)20 7946 0958").value == "442079460958"
    assert normalise_phone("+8860911223344").value == "886911223344"


def test_phone_scientific_notation():
    for raw in ["8.86911E+11", "8.86911e11", "8,86911E+11", "8.86911E11", "886911E+6"]:
        result = normalise_phone(raw, "TW")
        assert (error(result), result.params) == ("phone_scientific_notation", {}), raw
    assert "scientific notation" in message(normalise_phone("8.86911E+11"), "8.86911E+11")


def test_phone_not_international_without_region():
    result = normalise_phone("0911223344")
    assert (error(result), result.params) == ("phone_not_international", {"suggestion": "", "fix": None})
    assert message(result, "0911223344") == "'0911223344' starts with 0; write it with its country code."


def test_phone_not_international_with_region_suggests_fix():
    result = normalise_phone("0911-223-344", "TW")
    assert (error(result), result.params) == ("phone_not_international", {"suggestion": " (886911223344)", "fix": "886911223344"})
    assert message(result, "0911-223-344") == (
        "'0911-223-344' starts with 0; write it with its country code (886911223344).")
    assert message(result, "0911-223-344", "zh-TW") == "「0911-223-344」以 0 開頭，請加上國碼 (886911223344)。"
    assert normalise_phone("0911223344", "tw").params == {"suggestion": " (886911223344)", "fix": "886911223344"}
    assert normalise_phone("090-1234-5678", "JP").params == {"suggestion": " (819012345678)", "fix": "819012345678"}


@pytest.mark.parametrize("raw,region", [("0911", "TW"), ("0911223344", "XX"), ("0", "TW")])
def test_phone_not_international_no_suggestion_when_not_possible(raw, region):
    result = normalise_phone(raw, region)
    assert (error(result), result.params) == ("phone_not_international", {"suggestion": "", "fix": None})


@pytest.mark.parametrize("raw", ["1234567", "+886 1234", "8869112233445566", "1" * 16])
def test_phone_length_outside_8_to_15(raw):
    assert error(normalise_phone(raw)) == "invalid_phone"


@pytest.mark.parametrize("raw", ["88612345", "999123456789", "1234567890123"])
def test_phone_not_possible_for_country_code(raw):
    assert error(normalise_phone(raw)) == "invalid_phone"


@pytest.mark.parametrize("raw", ["886911223344x", "tel:886911223344", "886/911223344", "+",
                                 "８８６９１１２２３３４４", "886911223344 ext 5"])
def test_phone_non_digits(raw):
    assert error(normalise_phone(raw)) == "invalid_phone"


def test_phone_message_params():
    assert message(normalise_phone("12"), "12").startswith("'12' is not a valid international phone number")


def test_normalise_phones_matches_single_and_keeps_order():
    raws = ["+886 911 223 344", "0911223344", "8.86911E+11", "+886 911 223 344", "85291234567", "123"]
    results = normalise_phones(raws, "TW")
    assert results == [normalise_phone(r, "TW") for r in raws]
    assert [r.code for r in results] == [None, "phone_not_international", "phone_scientific_notation",
                                         None, None, "invalid_phone"]
    assert results[0] is results[3]
    assert normalise_phones([]) == []


def test_phone_cache_keyed_on_digits_and_only_needed_region():
    _check_phone_digits.cache_clear()
    normalise_phone("+886 911 223 344", "TW")
    normalise_phone("+886-911-223-344", "HK")  # same digits; with "+" the region is irrelevant
    normalise_phone("0911223344", "TW")
    normalise_phone("0911223344")
    info = _check_phone_digits.cache_info()
    assert (info.hits, info.misses) == (1, 3)


# ---------------------------------------------------------------- gender

@pytest.mark.parametrize("raw,gender", [
    ("male", "male"), ("Male", "male"), ("MALE", "male"), ("M", "male"), ("m", "male"), ("男", "male"),
    ("female", "female"), ("FEMALE", "female"), ("F", "female"), ("f", "female"), ("女", "female"),
    ("other", "other"), ("Other", "other"), ("其他", "other"),
])
def test_gender_aliases(raw, gender):
    assert normalise_gender(raw) == Result(gender)


@pytest.mark.parametrize("raw", ["x", "man", "O", "男性", "unknown"])
def test_gender_invalid(raw):
    assert error(normalise_gender(raw)) == "invalid_gender"


# ---------------------------------------------------------------- date

@pytest.mark.parametrize("raw", ["1990-01-05", "1990/01/05", "1990/1/5", "1990-1-05"])
def test_date_formats(raw):
    assert normalise_date(raw, TODAY) == Result("1990-01-05")


def test_date_today_ok_and_default_today():
    assert normalise_date("2024-06-15", TODAY).ok
    assert normalise_date(datetime.date.today().isoformat()).ok


@pytest.mark.parametrize("raw", [
    "1990-02-30", "2023-02-29", "1990-13-01", "1990-00-10",  # not real dates
    "2024-06-16", "2999-01-01",  # future
    "1899-12-31",  # before 1900
    "90-01-05", "1990.01.05", "05/01/1990", "1990-01/05", "19900105", "1990-01-05 00:00:00", "١٩٩٠-01-05",
])
def test_date_invalid(raw):
    assert error(normalise_date(raw, TODAY)) == "invalid_date"


def test_date_leap_day():
    assert normalise_date("2024/2/29", TODAY).value == "2024-02-29"


# ---------------------------------------------------------------- tags

def test_tags_both_commas_trimmed_deduplicated():
    assert normalise_tags(" VIP ，Taipei,vip , VIP,，  ,台北 ").value == ["VIP", "Taipei", "vip", "台北"]


def test_tags_single_and_only_separators():
    assert normalise_tags("VIP").value == ["VIP"]
    assert normalise_tags(", ，").value == []


def test_tag_50_ok_51_too_long():
    assert normalise_tags("a" * 50 + ",b").value == ["a" * 50, "b"]
    result = normalise_tags("b," + "a" * 51)
    assert (result.code, result.params) == ("value_too_long", {"limit": 50})


# ---------------------------------------------------------------- custom attributes

def attribute_error(raw, type_, options=None):
    result = normalise_attribute(raw, type_, options)
    assert result.code == "invalid_attribute_value", (raw, type_, result)
    return result.params


def test_attribute_text_is_kept_as_written():
    # its length limit is the GX suite's rule (expectations/base.json)
    assert normalise_attribute("anything at all", "text", None) == Result("anything at all")
    assert normalise_attribute("a" * 1001, "text", None) == Result("a" * 1001)


@pytest.mark.parametrize("raw,value", [("42", 42), ("-12.5", -12.5), ("+3", 3), ("12.0", 12), ("0.25", 0.25),
                                       ("12345678901234567890", 12345678901234567890)])
def test_attribute_number(raw, value):
    result = normalise_attribute(raw, "number", None)
    assert result.value == value and type(result.value) is type(value)


@pytest.mark.parametrize("raw", ["1,234", "1e5", "nan", "inf", "-inf", "12.", ".5", "abc", "1 000", "١٢",
                                 "9" * 400 + ".5"])
def test_attribute_number_invalid(raw):
    assert attribute_error(raw, "number") == {"type": "number", "options": ""}


def test_attribute_date():
    assert normalise_attribute("2000/2/29", "date", None) == Result("2000-02-29")
    assert attribute_error("2000-02-30", "date") == {"type": "date", "options": ""}
    assert attribute_error("2999-01-01", "date") == {"type": "date", "options": ""}


@pytest.mark.parametrize("raw,value", [("true", True), ("TRUE", True), ("Yes", True), ("y", True), ("Y", True),
                                       ("1", True), ("是", True), ("false", False), ("False", False),
                                       ("no", False), ("n", False), ("N", False), ("0", False), ("否", False)])
def test_attribute_boolean(raw, value):
    assert normalise_attribute(raw, "boolean", None).value is value


@pytest.mark.parametrize("raw", ["maybe", "t", "yep", "1.0", "01", "true!"])
def test_attribute_boolean_invalid(raw):
    assert attribute_error(raw, "boolean") == {"type": "boolean", "options": ""}


def test_attribute_select():
    options = ["Gold", "Silver"]
    assert normalise_attribute("gold", "select", options) == Result("Gold")
    assert normalise_attribute("SILVER", "select", options) == Result("Silver")
    params = attribute_error("Bronze", "select", options)
    assert params == {"type": "select", "options": " (one of: Gold, Silver)"}
    result = normalise_attribute("Bronze", "select", options)
    assert message(result, "Bronze", column="Tier") == "'Bronze' is not a valid select for 'Tier' (one of: Gold, Silver)."
    assert attribute_error("Gold", "select", None) == {"type": "select", "options": ""}
    assert normalise_attribute("STRASSE", "select", ["Straße"]) == Result("Straße")  # casefolded


def test_attribute_unknown_type_is_a_configuration_error():
    with pytest.raises(ValueError):
        normalise_attribute("x", "colour", None)


def test_phone_column_checked_with_helper_processes_gives_the_same_answers(monkeypatch):
    from contact_import import normalisation

    column = ["+886 911-223-344", "0911223344", "8.86911E+11", "12", "886911223344", "85291234567",
              "0911\n223344", "999123456789", "+886 911-223-344"] * 3 + [f"8869{n:08d}" for n in range(40)]
    expected = [normalise_phone(v, "TW") for v in column]
    monkeypatch.setattr(normalisation, "PARALLEL_PHONES", 5)
    monkeypatch.setattr(normalisation.os, "cpu_count", lambda: 3)
    assert normalisation.normalise_phones(column, "TW") == expected


@pytest.mark.parametrize("address", [
    "ming@example.com", "Ming.Wang+vip@Example.COM", "a!#$%&'*+/=?^_`{|}~-b@mail.example.co.jp", "x@localhost",
    "x@example", "x@-bad.com", "x@exa_mple.com", "x@example..com", ".x@example.com", "x.@example.com",
    "x..y@example.com", "a@b.c0m", "x@example.123", "x@" + "a" * 64 + ".com", "x" * 64 + "@example.com",
    "x" * 65 + "@example.com", "用户@例子.公司", '"quoted local"@example.com', "x@[127.0.0.1]", "x@test",
])
def test_email_fast_path_agrees_with_email_validator(address):
    from email_validator import EmailNotValidError, validate_email

    try:
        expected = validate_email(address, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        expected = None
    assert normalise_email(address).value == expected


def test_the_phone_check_without_parsing_agrees_with_phonenumbers_on_every_country_code():
    """normalisation's fast path answers like phonenumbers.parse + is_possible_number, or
    leaves the value to them: random national numbers after every country code, leading
    digits that look like national prefixes included."""
    import random

    import phonenumbers
    from phonenumbers import COUNTRY_CODE_TO_REGION_CODE

    def by_phonenumbers(digits: str):
        try:
            number = phonenumbers.parse("+" + digits)
        except phonenumbers.NumberParseException:
            return None, "invalid_phone"
        if not phonenumbers.is_possible_number(number):
            return None, "invalid_phone"
        return f"{number.country_code}{phonenumbers.national_significant_number(number)}", None

    rng = random.Random(20261202)
    answered = 0
    for code in COUNTRY_CODE_TO_REGION_CODE:
        for _ in range(150):
            digits = (str(code) + "".join(rng.choice("0123456789") for _ in range(rng.randint(4, 13))))[:15]
            if len(digits) < 8:
                continue
            fast = _possible_without_parsing(digits)
            if fast is not None:
                answered += 1
                assert (fast.value, fast.code) == by_phonenumbers(digits), digits
    assert answered > 10_000  # most values take the fast path
    assert normalise_phone("+44 20 7946 0958").value == "442079460958"
    assert normalise_phone("+44 (0)20 7946 0958").value == "442079460958"  # parse's own way
    assert normalise_phone("+39 06 6982 1234").value == "390669821234"  # Italy keeps its 0


# ---------------------------------------------------------------- the option to complete local numbers

@pytest.mark.parametrize("raw, completed_to", [
    ("0912 345 678", "886912345678"),  # written the local way
    ("(02) 2345-6789", "886223456789"),  # a Taipei line
    ("912345678", "886912345678"),  # a number cell that dropped the 0
])
def test_completed_takes_a_fixable_number_with_a_warning(raw, completed_to):
    from contact_import.normalisation import completed

    result = completed(normalise_phone(raw, "TW"))
    assert (result.ok, result.value, result.warning) == (True, completed_to, "phone_completed")
    assert result.params == {"completed": completed_to}


@pytest.mark.parametrize("raw, region", [
    ("0912", "TW"),  # not a possible number even with the region
    ("0912345678", None),  # no region to complete it with
    ("abc", "TW"),
])
def test_completed_leaves_what_the_region_cannot_fix_an_error(raw, region):
    from contact_import.normalisation import completed

    result = normalise_phone(raw, region)
    assert completed(result) == result and not result.ok


def test_completed_leaves_valid_numbers_as_they_are():
    from contact_import.normalisation import completed

    result = normalise_phone("886912345678", "TW")
    assert completed(result) == result and result.warning is None
