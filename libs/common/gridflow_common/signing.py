"""HMAC-SHA256 signatures between Gridflow and department systems, both ways: the webhook
adapter signs what it pushes, and a department signs the status it posts back
(``POST /api/v1/departments/{code}/updates``), each with the department's shared secret.

What is signed is ``"<timestamp>.<body>"``: the timestamp (Unix seconds, header
``X-Gridflow-Timestamp``) binds the signature to a moment, so a captured request cannot be
replayed later than ``TOLERANCE_SECONDS`` after it was made. The signature travels as
``X-Gridflow-Signature: sha256=<hex>``. Standard library only.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Gridflow-Signature"
TIMESTAMP_HEADER = "X-Gridflow-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SCHEME = "sha256="
TOLERANCE_SECONDS = 300


class BadSignature(ValueError):
    """The request is not signed, or not by the holder of the secret, or too old: the message
    says which, and never the expected value."""


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Gridflow-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode("utf-8"), str(timestamp).encode("ascii") + b"." + body, "sha256")
    return SCHEME + mac.hexdigest()


def verify(
    secret: str, timestamp: str | None, signature: str | None, body: bytes, now: float
) -> None:
    """Raise ``BadSignature`` unless ``signature`` is ``sign(secret, timestamp, body)`` and
    ``timestamp`` is within ``TOLERANCE_SECONDS`` of ``now`` (Unix seconds)."""
    if not signature:
        raise BadSignature(f"the {SIGNATURE_HEADER} header is missing")
    if not timestamp:
        raise BadSignature(f"the {TIMESTAMP_HEADER} header is missing")
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise BadSignature(f"{TIMESTAMP_HEADER} must be Unix seconds")
    if abs(now - int(timestamp)) > TOLERANCE_SECONDS:
        raise BadSignature(
            f"{TIMESTAMP_HEADER} is more than {TOLERANCE_SECONDS} s from Gridflow's clock"
        )
    if not signature.startswith(SCHEME):
        raise BadSignature(f"{SIGNATURE_HEADER} must start with {SCHEME}")
    expected = sign(secret, int(timestamp), body)
    if not hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii", "replace")):
        raise BadSignature("the signature does not match the body and the department's secret")


def digest(body: bytes) -> str:
    """A short fingerprint of a body, for logs (never the body: it may hold personal data)."""
    return hashlib.sha256(body).hexdigest()[:16]
