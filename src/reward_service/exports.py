"""CSV cells for operators' exports (winners list, shipments), opened in spreadsheets."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import datetime
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    # A user-typed value starting with these is run as a formula by spreadsheet programs.
    if text.startswith(FORMULA_STARTS) and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def csv_line(values: Iterable[Any]) -> str:
    out = io.StringIO()
    csv.writer(out).writerow([cell(v) for v in values])
    return out.getvalue()
