"""Optimistic concurrency over HTTP: a row's ``version`` is its ETag; an edit sends it back
in ``If-Match`` and is refused (412) when the row changed meanwhile, so two operators
editing the same thing cannot silently overwrite each other."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Header

from service_kit.errors import ProblemError


class PreconditionRequired(ProblemError):
    status, code, title = 428, "precondition_required", "If-Match required"


class VersionMismatch(ProblemError):
    status, code, title = 412, "version_mismatch", "Changed meanwhile"


def etag(version: int) -> str:
    return f'"{version}"'


def parse_if_match(header: str | None, *, required: bool, what: str = "resource") -> int | None:
    """The version an ``If-Match`` header names (``"3"``, ``W/"3"`` or ``3``)."""
    if header is None or not header.strip():
        if required:
            raise PreconditionRequired(
                f"Send If-Match with the ETag of the {what} you edited (GET returns it)."
            )
        return None
    value = header.strip()
    if value.startswith("W/"):
        value = value[2:]
    value = value.strip('"')
    if not value.isdigit() or len(value) > 18:
        raise PreconditionRequired(
            f"If-Match {header[:40]!r} is not an ETag of this API; send the ETag GET returned."
        )
    return int(value)


def required_version(header: str | None, what: str) -> int:
    """The version an edit was made on; 428 without one."""
    version = parse_if_match(header, required=True, what=what)
    assert version is not None  # required=True raises instead
    return version


def check_version(current: int, expected: int, what: str) -> None:
    if expected != current:
        raise VersionMismatch(
            f"The {what} is at version {current}, not {expected}; reload it, re-apply your "
            "change and send the new ETag.",
            current_version=current,
        )


# The header of an edit; a value that is not an ETag of this API is a 428 too.
IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        description='The ETag (version) of what is edited, as last read, e.g. `"3"`',
    ),
]


def etag_header(what: str) -> dict[str, Any]:
    """OpenAPI ``headers`` of a response carrying the ETag."""
    return {
        "ETag": {
            "description": f"The {what}'s version; send it back in If-Match to edit",
            "schema": {"type": "string", "example": '"3"'},
        }
    }


PRECONDITION_RESPONSES: dict[int | str, dict[str, Any]] = {
    412: {"description": "The If-Match ETag is stale"},
    428: {"description": "If-Match missing or not an ETag of this API"},
}

# Of an operation where If-Match is optional: a stale one is a 412, one that is no ETag of
# this API (``parse_if_match``) a 428.
OPTIONAL_PRECONDITION_RESPONSES: dict[int | str, dict[str, Any]] = {
    412: {"description": "The If-Match ETag, when sent, is stale"},
    428: {"description": "If-Match is not an ETag of this API"},
}
