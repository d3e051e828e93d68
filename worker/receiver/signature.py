"""Webhook signature verification: the project's default scheme (awalchat.md, "Inbound").

    X-Awal-Signature-256: sha256=<hex HMAC-SHA256>

The key is a webhook secret's UTF-8 bytes; any configured secret may match (rotation). With an
`X-Timestamp` header the signed bytes are `timestamp + raw body` and a timestamp more than
300 s away from now is refused; without it the HMAC covers the raw body alone.

Every refusal is a `PayloadError(401, reason)`: a malformed header (not ASCII, not a number,
not hex) is a bad signature like any other, never a 5xx. The scheme lives here alone so it can
change when the vendor documents its own.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Iterable

from worker.errors import PayloadError

SIGNATURE_HEADER = "x-awal-signature-256"
TIMESTAMP_HEADER = "x-timestamp"
TOLERANCE_SECONDS = 300.0

_PREFIX = "sha256="
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_MAX_TIMESTAMP_DIGITS = 12  # seconds until the year 33658; longer is hostile


def sign(secret: str, body: bytes, timestamp: str | None = None) -> str:
    """The header value for `body` signed with `secret` (and `timestamp` when given)."""
    message = body if timestamp is None else timestamp.encode("ascii") + body
    return _PREFIX + hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


class SignatureVerifier:
    """Checks webhook signatures against every configured secret.

    `now` returns Unix seconds; tests inject a fixed clock.
    """

    def __init__(
        self,
        secrets: Iterable[str],
        *,
        tolerance: float = TOLERANCE_SECONDS,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._keys = tuple(secret.encode("utf-8") for secret in secrets)
        if not self._keys:
            raise ValueError("at least one webhook secret is required")
        self._tolerance = tolerance
        self._now = now

    def verify(self, body: bytes, signature: str | None, timestamp: str | None = None) -> None:
        """Return when `signature` matches `body` (and `timestamp`); else raise PayloadError(401).

        `signature` and `timestamp` are the raw header values, or None when absent.
        """
        if signature is None:
            raise PayloadError(401, "missing signature")
        digest = _parse_signature(signature)
        message = body
        if timestamp is not None:
            message = self._check_timestamp(timestamp) + body
        for key in self._keys:
            expected = hmac.new(key, message, hashlib.sha256).digest()
            if hmac.compare_digest(expected, digest):
                return
        raise PayloadError(401, "invalid signature")

    def _check_timestamp(self, value: str) -> bytes:
        if not (value.isascii() and value.isdigit() and len(value) <= _MAX_TIMESTAMP_DIGITS):
            raise PayloadError(401, "malformed timestamp")
        if abs(self._now() - int(value)) > self._tolerance:
            raise PayloadError(401, "stale timestamp")
        return value.encode("ascii")


def _parse_signature(value: str) -> bytes:
    hex_part = value[len(_PREFIX) :] if value.startswith(_PREFIX) else None
    if hex_part is None or len(hex_part) != 64 or not _HEX_DIGITS.issuperset(hex_part):
        raise PayloadError(401, "malformed signature")
    return bytes.fromhex(hex_part)
