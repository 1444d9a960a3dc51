from contact_import.channels import CHANNELS
from contact_import.mapping import map_columns
from contact_import.workspaces import Attribute

LINE = CHANNELS["line"]
ATTRS = [Attribute("vip_level", "VIP Level", "select", ("Gold",)), Attribute("points", "Points", "number", None)]


def codes(result):
    return [(i.code, i.column) for i in result.issues]


def test_headers_match_case_and_space_insensitively_with_chinese_aliases_and_attributes():
    result = map_columns(["line user id", "姓名", " E mail ", "手機", "標籤", "vip level", "points"], LINE, ATTRS)
    assert result.issues == []
    assert result.columns == {"line user id": "user_id", "姓名": "name", " E mail ": "email", "手機": "phone",
                              "標籤": "tags", "vip level": "attr:vip_level", "points": "attr:points"}


def test_unknown_column_suggests_the_closest_names():
    result = map_columns(["LINE User ID", "Emial"], LINE, ATTRS)
    assert codes(result) == [("unknown_column", "Emial")]
    assert "did you mean 'Email'" in result.issues[0].message()


def test_missing_user_id_and_duplicate_columns():
    result = map_columns(["Name", "姓名"], LINE, ATTRS)
    assert codes(result) == [("duplicate_column", "姓名"), ("missing_required_column", "LINE User ID")]


def test_explicit_mapping_renames_and_ignores_columns():
    result = map_columns(["uid", "Full name", "Internal note"], LINE, ATTRS,
                         {"uid": "LINE User ID", "Full name": "name", "Internal note": None})
    assert result.issues == []
    assert result.columns == {"uid": "user_id", "Full name": "name"}


def test_another_channels_user_id_column_is_not_this_channels():
    result = map_columns(["WhatsApp User ID"], LINE, [])
    assert ("missing_required_column", "LINE User ID") in codes(result)
    assert ("unknown_column", "WhatsApp User ID") in codes(result)


def test_unknown_column_suggestion_in_traditional_chinese():
    (issue,) = map_columns(["LINE User ID", "Emial"], LINE, ATTRS).issues
    assert issue.message("zh-TW") == "欄位「Emial」不是已知的欄位或自訂屬性（您是不是要找「Email」？）。"
