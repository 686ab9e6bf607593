"""What makes two requests "the same" for an Idempotency-Key (pure functions)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable

_BOUNDARY = re.compile(r"boundary=\"?([^\";]+)\"?", re.IGNORECASE)


def canonical_body(content_type: str, body: bytes) -> bytes:
    """The body with what a client may vary between retries taken out: JSON is compared by
    value (key order and spacing do not matter), a multipart form without its boundary (a
    new random one per send). Anything else is compared byte for byte."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        try:
            value = json.loads(body)
        except ValueError:  # refused later by the endpoint; compare the bytes meanwhile
            return body
        return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    if media_type == "multipart/form-data":
        found = _BOUNDARY.search(content_type)
        if found:
            return body.replace(found.group(1).encode("latin-1"), b"")
    return body


def fingerprint(
    method: str, path: str, query: Iterable[tuple[str, str]], content_type: str, body: bytes
) -> str:
    """SHA-256 over the method, the path, the sorted query parameters and the canonical body:
    the same key sent to another operation, or with other parameters, is another request."""
    digest = hashlib.sha256()
    for part in (method.upper(), path, json.dumps(sorted(query))):
        digest.update(part.encode())
        digest.update(b"\x00")
    digest.update(canonical_body(content_type, body))
    return digest.hexdigest()
