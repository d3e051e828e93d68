"""The default webhook signature scheme (awalchat.md, "Inbound: webhooks")."""

from __future__ import annotations

import pytest

from worker.errors import PayloadError
from worker.receiver.signature import SignatureVerifier, sign

SECRET = "whsec-test"
BODY = b'{"event":"message.received","data":{"conversation_id":1}}'
VECTOR_WITH_TIMESTAMP = "sha256=16444f3ecac65b5ed3fd96c93400a06606fdb6277ef752f982cfef42535e24d6"
VECTOR_BODY_ONLY = "sha256=9e4e5a1ad1c63e52f5d88906711aaaeb5e3121af3c5da86e1cd32d15a2317211"
NOW = 1704124800.0


def verifier(*secrets: str, now: float = NOW) -> SignatureVerifier:
    return SignatureVerifier(secrets or (SECRET,), now=lambda: now)


def refusal(verifier: SignatureVerifier, signature: str | None, timestamp: str | None) -> str:
    with pytest.raises(PayloadError) as caught:
        verifier.verify(BODY, signature, timestamp)
    assert caught.value.status == 401
    return caught.value.reason


def test_sign_reproduces_the_spec_vector_with_timestamp() -> None:
    assert sign(SECRET, BODY, "1704124800") == VECTOR_WITH_TIMESTAMP


def test_sign_reproduces_the_spec_vector_without_timestamp() -> None:
    assert sign(SECRET, BODY) == VECTOR_BODY_ONLY


def test_spec_vector_with_timestamp_verifies() -> None:
    verifier().verify(BODY, VECTOR_WITH_TIMESTAMP, "1704124800")


def test_spec_vector_without_timestamp_verifies_at_any_time() -> None:
    verifier(now=0.0).verify(BODY, VECTOR_BODY_ONLY, None)


def test_uppercase_hex_is_accepted() -> None:
    verifier().verify(BODY, "sha256=" + VECTOR_BODY_ONLY[7:].upper(), None)


def test_any_configured_secret_may_match() -> None:
    verifier("old-secret", SECRET).verify(BODY, VECTOR_BODY_ONLY, None)


def test_timestamp_within_300_seconds_either_way_is_accepted() -> None:
    verifier(now=NOW + 300).verify(BODY, VECTOR_WITH_TIMESTAMP, "1704124800")
    verifier(now=NOW - 300).verify(BODY, VECTOR_WITH_TIMESTAMP, "1704124800")


@pytest.mark.parametrize("now", [NOW + 301, NOW - 301])
def test_timestamp_more_than_300_seconds_away_is_refused(now: float) -> None:
    assert refusal(verifier(now=now), VECTOR_WITH_TIMESTAMP, "1704124800") == "stale timestamp"


def test_signature_over_body_alone_does_not_pass_when_a_timestamp_is_sent() -> None:
    assert refusal(verifier(), VECTOR_BODY_ONLY, "1704124800") == "invalid signature"


def test_wrong_secret_is_refused() -> None:
    assert refusal(verifier("other"), VECTOR_BODY_ONLY, None) == "invalid signature"


def test_tampered_body_is_refused() -> None:
    with pytest.raises(PayloadError, match="invalid signature"):
        verifier().verify(BODY + b" ", VECTOR_BODY_ONLY, None)


def test_missing_signature_is_refused() -> None:
    assert refusal(verifier(), None, None) == "missing signature"


@pytest.mark.parametrize(
    "signature",
    [
        "",
        VECTOR_BODY_ONLY[7:],  # no scheme prefix
        "sha1=" + VECTOR_BODY_ONLY[7:],
        VECTOR_BODY_ONLY[:-1],  # 63 hex digits
        VECTOR_BODY_ONLY + "00",
        VECTOR_BODY_ONLY[:-1] + "g",
        VECTOR_BODY_ONLY[:-1] + "é",  # not ASCII
        "sha256=" + "٣" * 64,  # Arabic-Indic digits
    ],
)
def test_malformed_signature_is_refused_not_crashed(signature: str) -> None:
    assert refusal(verifier(), signature, None) == "malformed signature"


@pytest.mark.parametrize(
    "timestamp", ["", "abc", "1704124800.5", "-1704124800", " 1", "١٧٠٤١٢٤٨٠٠", "9" * 5000, "1e9"]
)
def test_malformed_timestamp_is_refused_not_crashed(timestamp: str) -> None:
    assert refusal(verifier(), VECTOR_WITH_TIMESTAMP, timestamp) == "malformed timestamp"


def test_no_secret_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="secret"):
        SignatureVerifier([])
