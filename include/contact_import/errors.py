"""The error-code table (docs/design.md#error-codes): every code, its severity and its messages.

Codes are stable names that reports, the API and tests rely on. Messages are
templates filled from an Issue's `params`, in English and Traditional Chinese.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ERROR = "error"
WARNING = "warning"

# code: (severity, English, Traditional Chinese)
CODES: dict[str, tuple[str, str, str]] = {
    "missing_required_column": (ERROR, "The required column {column!r} is missing.", "缺少必要欄位「{column}」。"),
    "duplicate_column": (ERROR, "The column {column!r} appears more than once.", "欄位「{column}」重複出現。"),
    "unknown_column": (ERROR, "The column {column!r} is not a known field or custom attribute{suggestion}.", "欄位「{column}」不是已知的欄位或自訂屬性{suggestion}。"),
    "missing_user_id": (ERROR, "The User ID is empty.", "使用者 ID 為空白。"),
    "invalid_user_id": (ERROR, "{value!r} is not a valid {channel} User ID.", "「{value}」不是有效的 {channel} 使用者 ID。"),
    "duplicate_user_id": (ERROR, "The User ID {value!r} already appears on row {first_row}.", "使用者 ID「{value}」已出現在第 {first_row} 列。"),
    "invalid_email": (ERROR, "{value!r} is not a valid email address.", "「{value}」不是有效的電子郵件地址。"),
    "invalid_phone": (ERROR, "{value!r} is not a valid international phone number (8-15 digits with country code).", "「{value}」不是有效的國際電話號碼（含國碼的 8-15 位數字）。"),
    "phone_not_international": (ERROR, "{value!r} starts with 0; write it with its country code{suggestion}.", "「{value}」以 0 開頭，請加上國碼{suggestion}。"),
    "phone_scientific_notation": (ERROR, "{value!r} is in scientific notation and its digits are lost; format the column as text and export again.", "「{value}」為科學記號，數字已遺失；請將欄位設為文字格式後重新匯出。"),
    "phone_leading_zero_lost": (ERROR, "{value!r} lacks its leading 0 (a number cell drops it), so it would be read as another country's number; write it with its country code{suggestion}, or start it with + if it is already international.", "「{value}」缺少開頭的 0（數字格式的儲存格會去掉它），會被當成其他國家的號碼；請加上國碼{suggestion}，若已是國際號碼請在前面加上 +。"),
    "invalid_gender": (ERROR, "{value!r} is not a gender; use male, female or other.", "「{value}」不是有效的性別；請填 male、female 或 other。"),
    "invalid_date": (ERROR, "{value!r} is not a real past date in YYYY-MM-DD or YYYY/MM/DD.", "「{value}」不是 YYYY-MM-DD 或 YYYY/MM/DD 格式的有效日期（不可為未來日期）。"),
    "value_too_long": (ERROR, "The value is longer than {limit} characters.", "內容超過 {limit} 個字元。"),
    "invalid_attribute_value": (ERROR, "{value!r} is not a valid {type} for {column!r}{options}.", "「{value}」不是「{column}」的有效{type}值{options}。"),
    "binding_incomplete": (ERROR, "Binding Teammate and Store Location Code must be filled in together.", "綁定成員與分店編號必須同時填寫。"),
    "teammate_not_found": (ERROR, "No teammate with email {value!r} in this workspace.", "此工作區沒有電子郵件為「{value}」的成員。"),
    "teammate_inactive": (ERROR, "The teammate {value!r} is not active.", "成員「{value}」已停用。"),
    "teammate_role_not_bindable": (ERROR, "The teammate {value!r} is not a sales rep or sales manager.", "成員「{value}」不是業務或業務主管，無法綁定。"),
    "store_not_found": (ERROR, "No store with code {value!r} in this workspace.", "此工作區沒有分店編號「{value}」。"),
    "teammate_not_in_store": (ERROR, "The teammate {teammate!r} does not work at store {value!r}.", "成員「{teammate}」不屬於分店「{value}」。"),
    "binding_not_supported": (ERROR, "The {channel} channel does not support teammate binding.", "{channel} 頻道不支援成員綁定。"),
    "omo_not_enabled": (ERROR, "This workspace does not have OMO; remove the binding columns.", "此工作區未啟用 OMO，請移除綁定欄位。"),
    "encoding_undetectable": (ERROR, "The file's text encoding could not be detected; save it as UTF-8 CSV.", "無法辨識檔案的文字編碼，請另存為 UTF-8 CSV。"),
    "not_a_table": (ERROR, "The file is not a CSV, .xlsx, .xls or .ods table.", "檔案不是 CSV、.xlsx、.xls 或 .ods 表格。"),
    "file_empty": (ERROR, "The file has no data rows.", "檔案沒有資料列。"),
    "malformed_csv": (ERROR, "The CSV is malformed near line {row}: {detail}.", "CSV 格式錯誤（第 {row} 行附近）：{detail}。"),
    "file_too_large": (ERROR, "The file is larger than {limit} MiB.", "檔案超過 {limit} MiB。"),
    "profile_shared": (WARNING, "This row shares a customer profile with row {other_row} (same {via}); its fields overwrite that row's.", "此列與第 {other_row} 列共用同一個顧客檔案（{via} 相同），資料將互相覆寫。"),
    "phone_completed": (WARNING, "{value!r} was written without its country code; it was completed with the workspace's region to {completed}.", "「{value}」未含國碼，已依工作區的地區補為 {completed}。"),
    "identity_conflict": (WARNING, "This contact already belongs to another customer than the one with this {via}; it stays with its customer.", "此聯絡人已屬於另一位顧客，與此{via}的顧客不同；將維持原顧客。"),
}

class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return ""


@dataclass(frozen=True)
class Issue:
    """One finding about the file: an error rejects it, a warning does not."""

    code: str
    row: int | None = None  # line in the original file, header = 1
    column: str = ""
    value: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def severity(self) -> str:
        return CODES[self.code][0]

    def message(self, lang: str = "en") -> str:
        _, en, zh = CODES[self.code]
        template = zh if lang.lower().startswith("zh") else en
        values = _Blank(value=self.value, column=self.column, row=self.row or "")
        values.update(self.params)
        if self.params.get("candidates"):
            values["suggestion"] = _did_you_mean(self.params["candidates"], zh=template is zh)
        return template.format_map(values)


class ImportFileError(Exception):
    """A problem with the file as a whole (no usable header, not a table, ...)."""

    def __init__(self, issue: Issue):
        super().__init__(issue.message())
        self.issue = issue


def _did_you_mean(candidates: list[str], zh: bool) -> str:
    if zh:
        return "（您是不是要找" + "或".join(f"「{c}」" for c in candidates) + "？）"
    return " (did you mean " + " or ".join(repr(c) for c in candidates) + "?)"


def normalise_lang(lang: str | None) -> str:
    """Pick a supported language from an Accept-Language header or --lang value."""
    for part in (lang or "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("zh"):
            return "zh-TW"
        if tag.startswith("en"):
            return "en"
    return "en"


# What the upload API answers before a file is stored (docs/operations.md#uploads-checked-at-once):
# a file of another channel, and compressed files that cannot be taken.
CODES.update({
    "channel_mismatch": (ERROR, "This looks like a {other} file: it has the column {column!r}, not {expected!r}. Choose the {other} channel, or upload a {channel} file.", "這看起來是 {other} 的檔案：有「{column}」欄位，而不是「{expected}」。請選擇 {other} 渠道，或上傳 {channel} 的檔案。"),
    "unpacked_too_large": (ERROR, "Unpacked, the file is larger than {limit} MiB; split it into smaller files.", "解壓縮後的檔案超過 {limit} MiB，請分割成較小的檔案。"),
    "archive_unreadable": (ERROR, "The compressed file cannot be unpacked ({detail}); compress it again as .gz or .zip.", "無法解壓縮此檔案（{detail}），請重新壓縮為 .gz 或 .zip。"),
    "archive_not_one_file": (ERROR, "A .zip must hold exactly one CSV or spreadsheet; this one holds {count} files.", "ZIP 檔必須只包含一個 CSV 或試算表檔案，此檔案包含 {count} 個檔案。"),
})

# What to do about a file that is refused for its size, said after the code's message.
ADVICE: dict[str, tuple[str, str]] = {
    "file_too_large": ("Compress it (.csv.gz, or a .zip holding the file: a CSV shrinks to about a fifth)"
                       " or split it into smaller files.",
                       "請壓縮檔案（.csv.gz，或將檔案放入 .zip：CSV 約可縮小為五分之一），或分割成較小的檔案。"),
}


def advised_message(issue: Issue, lang: str = "en") -> str:
    """The issue's message, followed by what to do where ADVICE says."""
    advice = ADVICE.get(issue.code)
    if advice is None:
        return issue.message(lang)
    if lang.lower().startswith("zh"):
        return issue.message(lang) + advice[1]
    return f"{issue.message(lang)} {advice[0]}"

# Files at the edges (docs/design.md#the-import-file): what would take more memory to read
# than an import may use is refused, by the limits encoding.py and spreadsheet.py name.
CODES.update({
    "too_many_columns": (ERROR, "The header has more than {limit} columns; keep only the columns to import.", "標題列超過 {limit} 個欄位，請只保留要匯入的欄位。"),
    "workbook_too_large": (ERROR, "The workbook needs more than {limit} MiB of memory to read (its cells or shared strings expand to that much); save its first sheet as CSV UTF-8 and upload that.", "讀取此活頁簿需要超過 {limit} MiB 的記憶體（儲存格或共用字串展開後過大），請將第一個工作表另存為 CSV UTF-8 後再上傳。"),
})

# Who may use a workspace (docs/design.md#who-may-use-a-workspace): a DAG run triggered by a
# user the workspace's `access` does not name, refused before its file is read.
CODES.update({
    "workspace_not_allowed": (ERROR, "The Airflow user {user!r} may not use the workspace {workspace!r}; its workspace file's access names who may.", "Airflow 使用者「{user}」無權使用工作區「{workspace}」；可使用者列於工作區檔案的 access。"),
})

# Faults of the parts, not of the file (docs/operations.md#faults): a step that meets one
# fails with the code's message and Airflow retries it; nothing of the file is rejected.
CODES.update({
    "storage_full": (ERROR, "No space is left where the import's files are written ({detail}); nothing was imported. Free some space, then upload the file again.", "存放匯入檔案的空間已滿（{detail}），未匯入任何資料。請釋出空間後重新上傳檔案。"),
    "storage_unavailable": (ERROR, "The import's file storage could not be reached ({detail}); nothing half-written was kept. Try again once it is back.", "無法連線至匯入檔案的儲存空間（{detail}），未保留任何寫到一半的檔案。請待其恢復後再試一次。"),
})
