"""Pure rules of the reward center: batch file parsing and per-line checks, grant keys,
and who may review. No I/O, unit-tested on their own."""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass
from enum import StrEnum

MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_LINES = 5000
MAX_QUANTITY = 100
MAX_ACTIVITY_CODES = 20
USER_ID_MAX = 128
REMARKS_MAX = 500
ACTIVITY_CODE_MAX = 32

REQUIRED_COLUMNS = frozenset({"user_id", "prize_id"})
OPTIONAL_COLUMNS = frozenset({"activity_code", "quantity", "remarks", "counterpart_id", "app_id"})
MANUAL_TASK = "manual"


class IssuanceStatus(StrEnum):
    awaiting_review = "awaiting_review"
    # Approved (or needing no review): its reward records exist or are being created.
    approved = "approved"
    rejected = "rejected"


class BatchStatus(StrEnum):
    awaiting_review = "awaiting_review"
    approved = "approved"
    rejected = "rejected"


class FileProblem(Exception):
    """The whole file is refused (nothing is stored)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass
class BatchLine:
    """One data line of a batch file; ``code`` is set when the line is rejected."""

    line: int
    user_id: str
    prize_id_text: str
    activity_code: str
    quantity: int = 1
    remarks: str | None = None
    counterpart_id: str | None = None
    app_id: str | None = None
    prize_id: uuid.UUID | None = None
    code: str | None = None
    detail: str | None = None

    @property
    def ok(self) -> bool:
        return self.code is None

    def reject(self, code: str, detail: str) -> None:
        if self.code is None:
            self.code, self.detail = code, detail


def grant_key(issuance_id: uuid.UUID, n: int) -> str:
    """The grant key of the n-th record (1-based) of an issuance: replays of the approval
    or of its queued jobs can never create a second record for the same unit."""
    return f"manual:{issuance_id}:{n}"


def grant_keys(issuance_id: uuid.UUID, quantity: int) -> list[str]:
    return [grant_key(issuance_id, n) for n in range(1, quantity + 1)]


def may_review(submitter: str, reviewer: str) -> bool:
    """Review is a second pair of eyes (SPEC §3.4): the submitter cannot approve their own."""
    return submitter != reviewer


def normalize_code(code: str | None) -> str:
    return (code or "").strip().upper()


def decode_file(data: bytes) -> str:
    if not data.strip():
        raise FileProblem("empty_file", "The file has no lines.")
    if len(data) > MAX_FILE_BYTES:
        raise FileProblem("file_too_large", f"The file is larger than {MAX_FILE_BYTES} bytes.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileProblem("invalid_csv", "The file must be UTF-8 CSV.") from exc


def parse_batch(data: bytes, default_activity_code: str | None) -> list[BatchLine]:
    """Parse and check every line on its own. File-level problems (size, encoding, header,
    line count) raise FileProblem; line-level ones mark the line rejected with a code.
    A repeated (user, prize, activity) line is rejected as ``duplicate_line``: the first one
    stands, so a file pasted twice cannot double the rewards."""
    text = decode_file(data)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration as exc:
        raise FileProblem("empty_file", "The file has no lines.") from exc
    except csv.Error as exc:
        raise FileProblem("invalid_csv", f"The header cannot be read: {exc}") from exc
    columns = [h.strip().lower() for h in header]
    missing = REQUIRED_COLUMNS - set(columns)
    if missing:
        raise FileProblem(
            "invalid_csv",
            "The header must name user_id and prize_id (optional: "
            + ", ".join(sorted(OPTIONAL_COLUMNS))
            + f"); missing {', '.join(sorted(missing))}.",
        )
    if len(set(columns)) != len(columns):
        raise FileProblem("invalid_csv", "A column is named twice in the header.")
    default_code = normalize_code(default_activity_code)
    if not default_code and "activity_code" not in columns:
        raise FileProblem(
            "activity_code_required",
            "Name the activity code for the whole batch or give an activity_code column.",
        )
    lines: list[BatchLine] = []
    seen: dict[tuple[str, str, str], int] = {}
    number = 0
    try:
        for raw in reader:
            if not any(cell.strip() for cell in raw):
                continue  # blank lines (often a trailing newline) are not data
            number += 1
            if number > MAX_LINES:
                raise FileProblem("too_many_lines", f"At most {MAX_LINES} lines per file.")
            row = {col: (raw[i].strip() if i < len(raw) else "") for i, col in enumerate(columns)}
            item = _check_line(number, row, default_code, len(raw) > len(columns))
            if item.ok:
                key = (item.user_id, str(item.prize_id), item.activity_code)
                if key in seen:
                    item.reject(
                        "duplicate_line",
                        f"Same user, prize and activity as line {seen[key]}.",
                    )
                else:
                    seen[key] = number
            lines.append(item)
    except csv.Error as exc:
        raise FileProblem("invalid_csv", f"Line {number + 1} cannot be read: {exc}") from exc
    if not lines:
        raise FileProblem("empty_file", "The file has a header but no lines.")
    return lines


def _check_line(
    number: int, row: dict[str, str], default_code: str, too_many_cells: bool
) -> BatchLine:
    code = normalize_code(row.get("activity_code")) or default_code
    item = BatchLine(
        line=number,
        user_id=row.get("user_id", ""),
        prize_id_text=row.get("prize_id", ""),
        activity_code=code,
        remarks=row.get("remarks") or None,
        counterpart_id=row.get("counterpart_id") or None,
        app_id=row.get("app_id") or None,
    )
    if too_many_cells:
        item.reject("too_many_cells", "The line has more cells than the header.")
    if not item.user_id:
        item.reject("user_id_missing", "The user id is empty.")
    elif len(item.user_id) > USER_ID_MAX:
        item.reject("user_id_too_long", f"A user id has at most {USER_ID_MAX} characters.")
    if not item.prize_id_text:
        item.reject("prize_id_missing", "The prize id is empty.")
    else:
        try:
            item.prize_id = uuid.UUID(item.prize_id_text)
        except ValueError:
            item.reject("prize_id_invalid", "The prize id is not a prize id (UUID).")
    if not code:
        item.reject("activity_code_missing", "No activity code for this line.")
    elif len(code) > ACTIVITY_CODE_MAX:
        item.reject("activity_code_invalid", "The activity code is too long.")
    quantity_text = row.get("quantity", "")
    if quantity_text:
        try:
            item.quantity = int(quantity_text)
        except ValueError:
            item.quantity = 0
        if not 1 <= item.quantity <= MAX_QUANTITY:
            item.reject("quantity_invalid", f"The quantity must be a whole 1..{MAX_QUANTITY}.")
            item.quantity = 1
    if item.remarks and len(item.remarks) > REMARKS_MAX:
        item.reject("remarks_too_long", f"Remarks have at most {REMARKS_MAX} characters.")
    for name, value in (("counterpart_id", item.counterpart_id), ("app_id", item.app_id)):
        if value and len(value) > (USER_ID_MAX if name == "counterpart_id" else 64):
            item.reject(f"{name}_too_long", f"The {name} is too long.")
    return item
