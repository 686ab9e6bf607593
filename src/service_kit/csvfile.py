"""Reading uploaded CSV files strictly: a file the csv module cannot read cleanly is the
caller's mistake (422 ``invalid_csv`` with its line), never a 500 and never half-stored."""

from __future__ import annotations

import csv
import io

from service_kit.errors import Unprocessable


def read_csv(text: str) -> list[list[str]]:
    """Every row of ``text``, read before anything is acted on. Refused: a bare carriage
    return inside a line, a field longer than the csv module's limit (131,072 characters),
    an unterminated quote or other broken quoting (``strict``)."""
    reader = csv.reader(io.StringIO(text), strict=True)
    try:
        return list(reader)
    except csv.Error as exc:
        raise Unprocessable(
            f"Line {reader.line_num} of the CSV file cannot be read ({exc}); nothing was stored.",
            code="invalid_csv",
            line=reader.line_num,
        ) from exc
