"""Signed calls to systems outside the platform (a tenant's cash system), the way webhook
signatures work: the receiver knows the calls come from the platform and were not
changed or replayed later.

Header ``X-Platform-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`` where the HMAC is
keyed with the tenant's signing secret over ``"<t>." + body`` (the exact bytes sent).
The receiver recomputes it over the bytes it received, compares in constant time, and
refuses a timestamp more than ``TOLERANCE_SECONDS`` away from its clock (replays).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SIGNATURE_HEADER = "X-Platform-Signature"
TOLERANCE_SECONDS = 300
SECRET_MIN_LENGTH = 32


def new_secret() -> str:
    """A fresh signing secret (256 random bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def _mac(secret: str, body: bytes, at: int) -> str:
    message = str(at).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, at: int) -> str:
    """The header value for ``body`` sent at ``at`` (unix seconds)."""
    return f"t={at},v1={_mac(secret, body, at)}"


def verify(
    secret: str, body: bytes, header: str | None, now: float, tolerance: int = TOLERANCE_SECONDS
) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` and is recent enough."""
    if not header:
        return False
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        fields.setdefault(key, []).append(value)
    try:
        at = int(fields["t"][0])
    except (KeyError, ValueError):
        return False
    if abs(now - at) > tolerance:
        return False
    expected = _mac(secret, body, at)
    # Several v1 values are allowed (a sender rotating secrets may send both).
    return any(hmac.compare_digest(expected, given) for given in fields.get("v1", []))
