"""The WeChat official account (微信公众号) message callback's wire format: the signature, the
messages' XML (plaintext mode), and the passive reply. Standard library and defusedxml only; no
request, no database; time is passed in.

Signature: the platform sends ``signature``, ``timestamp`` and ``nonce`` in the query; the
signature is the hex SHA-1 of the three strings ``token``, ``timestamp``, ``nonce`` sorted and
joined. The token is the account's configuration, never in the repository.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from xml.etree import ElementTree as ET

from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeET

# A message is well under 2 KB; the platform caps a text at 2,048 bytes.
MAX_BODY_BYTES = 16 * 1024
# How far the platform's timestamp may be from our wall clock: an old signed request replayed
# is refused (wall-clock time, not the city's simulated clock).
REPLAY_WINDOW_SECONDS = 300
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


class WeChatRefused(Exception):
    def __init__(self, status: int, field: str, message: str):
        super().__init__(message)
        self.status = status
        self.field = field


def signature(token: str, timestamp: str, nonce: str) -> str:
    return hashlib.sha1("".join(sorted((token, timestamp, nonce))).encode("utf-8")).hexdigest()


def check_signature(token: str, query: dict[str, str], now: float) -> None:
    """WeChatRefused (401 missing, 403 wrong or stale) unless the query is signed by ``token``
    within the replay window around ``now`` (seconds since the epoch)."""
    given = query.get("signature") or ""
    timestamp = query.get("timestamp") or ""
    nonce = query.get("nonce") or ""
    if not given or not timestamp or not nonce:
        missing = [n for n in ("signature", "timestamp", "nonce") if not query.get(n)]
        raise WeChatRefused(
            401, missing[0], "the platform's signature, timestamp and nonce are required"
        )
    if len(timestamp) > 12 or not timestamp.isdigit() or len(nonce) > 64:
        raise WeChatRefused(403, "timestamp", "not a signed request")
    expected = signature(token, timestamp, nonce)
    if not hmac.compare_digest(expected.encode(), given.strip().lower().encode()):
        raise WeChatRefused(403, "signature", "the signature does not match")
    if abs(now - int(timestamp)) > REPLAY_WINDOW_SECONDS:
        raise WeChatRefused(
            403, "timestamp", f"more than {REPLAY_WINDOW_SECONDS} s from now: a replay is refused"
        )


@dataclass(frozen=True)
class Message:
    to_user: str
    from_user: str
    msg_type: str
    msg_id: str | None
    content: str | None = None
    lat: float | None = None
    lon: float | None = None
    label: str | None = None
    event: str | None = None


def _text(root: ET.Element, name: str, limit: int = 4096) -> str | None:
    node = root.find(name)
    if node is None or node.text is None:
        return None
    text = node.text.strip()
    if _CONTROL.search(text) or len(text) > limit:
        raise WeChatRefused(400, name, "holds control characters or is too long")
    return text or None


def _float(root: ET.Element, name: str, bound: float) -> float:
    text = _text(root, name, 40)
    try:
        value = float(text or "")
    except ValueError:
        raise WeChatRefused(400, name, "not a number") from None
    if value != value or not -bound <= value <= bound:
        raise WeChatRefused(400, name, f"must be between -{bound:g} and {bound:g}")
    return value


def parse_message(body: bytes) -> Message:
    """The platform's XML, with DTDs, entities and external references refused."""
    if b"\x00" in body:
        raise WeChatRefused(400, "_body", "the body holds NUL")
    try:
        root = SafeET.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException:
        raise WeChatRefused(400, "_body", "a DTD or entity declaration is refused") from None
    except ET.ParseError as exc:
        raise WeChatRefused(400, "_body", f"not well-formed XML: {exc}") from None
    if root.tag != "xml":
        raise WeChatRefused(400, "_body", "the root element is not <xml>")
    to_user = _text(root, "ToUserName", 64)
    from_user = _text(root, "FromUserName", 64)
    msg_type = _text(root, "MsgType", 32)
    for name, value in (
        ("ToUserName", to_user),
        ("FromUserName", from_user),
        ("MsgType", msg_type),
    ):
        if value is None:
            raise WeChatRefused(400, name, "required")
    msg_id = _text(root, "MsgId", 32)
    assert to_user and from_user and msg_type
    if msg_type == "text":
        return Message(to_user, from_user, msg_type, msg_id, content=_text(root, "Content", 2048))
    if msg_type == "location":
        return Message(
            to_user,
            from_user,
            msg_type,
            msg_id,
            lat=_float(root, "Location_X", 90),
            lon=_float(root, "Location_Y", 180),
            label=_text(root, "Label", 500),
        )
    return Message(to_user, from_user, msg_type, msg_id, event=_text(root, "Event", 64))


def reply(message: Message, content: str, create_time: int) -> bytes:
    """The passive reply: a text message back to the resident."""
    root = ET.Element("xml")
    for name, value in (
        ("ToUserName", message.from_user),
        ("FromUserName", message.to_user),
        ("CreateTime", str(create_time)),
        ("MsgType", "text"),
        ("Content", content),
    ):
        ET.SubElement(root, name).text = value
    return ET.tostring(root, encoding="unicode").encode("utf-8")
