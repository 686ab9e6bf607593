"""Parsing bulk member uploads (JSON array, CSV, or plain text): pure, no I/O."""

from __future__ import annotations

import json
from typing import Any

from service_kit.csvfile import read_csv
from service_kit.errors import Unprocessable

MAX_MEMBERS_PER_UPLOAD = 2_000_000
MAX_USER_ID_LENGTH = 128
HEADER_NAMES = frozenset({"user_id", "userid", "user", "id", "uid", "customer_id", "用户编号"})


class UploadError(Unprocessable):
    def __init__(self, detail: str, code: str = "invalid_member_upload", **extra: Any) -> None:
        super().__init__(detail, code=code, **extra)


def _clean(numbered: list[tuple[int, str]]) -> list[str]:
    """Validate (line numbers in messages) and de-duplicate, first occurrence wins."""
    for line, user_id in numbered:
        if not user_id or len(user_id) > MAX_USER_ID_LENGTH or not user_id.isprintable():
            raise UploadError(
                f"Line {line}: a user id is 1–{MAX_USER_ID_LENGTH} printable characters, "
                f"got {user_id[:40]!r}.",
                code="invalid_member_id",
                line=line,
            )
    unique = list(dict.fromkeys(user_id for _, user_id in numbered))
    if len(unique) > MAX_MEMBERS_PER_UPLOAD:
        raise UploadError(
            f"At most {MAX_MEMBERS_PER_UPLOAD} user ids per upload.", code="upload_too_large"
        )
    return unique


def _from_json(body: bytes) -> list[str]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UploadError(f"The body is not valid JSON: {exc}.") from exc
    if isinstance(data, dict):
        data = data.get("user_ids")
    if not isinstance(data, list):
        raise UploadError('Send a JSON array of user ids, or {"user_ids": [...]}.')
    numbered: list[tuple[int, str]] = []
    for index, item in enumerate(data, start=1):
        if isinstance(item, bool) or not isinstance(item, str | int):
            raise UploadError(
                f"Line {index}: user ids are strings (or integers).",
                code="invalid_member_id",
                line=index,
            )
        numbered.append((index, str(item).strip()))
    return _clean(numbered)


def _from_text(body: bytes, csv_format: bool) -> list[str]:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UploadError("The upload must be UTF-8 text.") from exc
    if csv_format:
        rows = [row[0].strip() if row else "" for row in read_csv(text)]
    else:
        rows = [line.strip() for line in text.splitlines()]
    numbered = [(n, value) for n, value in enumerate(rows, start=1) if value]
    if numbered and numbered[0][1].lower() in HEADER_NAMES:
        numbered = numbered[1:]
    return _clean(numbered)


def parse_member_ids(content_type: str | None, body: bytes) -> list[str]:
    media = (content_type or "application/json").split(";")[0].strip().lower()
    if media in ("application/json", "application/x-ndjson") or media.endswith("+json"):
        return _from_json(body)
    if media in ("text/csv", "application/csv"):
        return _from_text(body, csv_format=True)
    if media == "text/plain":
        return _from_text(body, csv_format=False)
    raise UploadError(
        f"Unsupported content type {media!r}: send application/json, text/csv or text/plain.",
        code="unsupported_media_type",
        status=415,
    )


def parse_external_page(data: Any) -> tuple[list[str], str | None]:
    """One page of an external segment source: a JSON array of ids (single page), or
    ``{"items" | "user_ids": [...], "next_cursor": "..." | null}``."""
    items: Any
    if isinstance(data, list):
        items, cursor = data, None
    elif isinstance(data, dict):
        items = data.get("items", data.get("user_ids"))
        cursor = data.get("next_cursor")
        if not isinstance(items, list) or not (cursor is None or isinstance(cursor, str)):
            raise UploadError(
                "The segment source answered an object without an items list.",
                code="external_segment_invalid",
            )
    else:
        raise UploadError(
            "The segment source answered neither a list nor a page object.",
            code="external_segment_invalid",
        )
    ids = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, str | int):
            raise UploadError(
                "The segment source sent a user id that is not a string.",
                code="external_segment_invalid",
            )
        ids.append(str(item).strip())
    return ids, cursor or None
