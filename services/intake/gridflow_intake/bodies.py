"""Reading a request body safely: size first, then content type, then JSON that cannot hurt.

Every refusal is a ``Rejected`` with a 4xx and the field it concerns, raised before anything is
written. What this module guards against was measured on the unguarded API: a 100 MB body read
whole (320 MB of memory), JSON nested 5,000 deep (``RecursionError``), an integer of 4,300 digits
(Python's int digit limit, ``ValueError``), ``\\u0000`` (PostgreSQL refuses NUL) and a lone
surrogate (``UnicodeEncodeError`` on the way out), each a 500.
"""

from __future__ import annotations

import json
import re
from typing import Any

from werkzeug.wrappers import Request

from gridflow_intake.handlers import Rejected

JSON_MEDIA_TYPE = "application/json"
READ_CHUNK_BYTES = 64 * 1024
# Deeper than any body Gridflow takes (a report is 3 levels deep); refused before marshmallow,
# whose nested error messages would recurse as deep again.
MAX_DEPTH = 16
# A JSON integer with more digits cannot be a coordinate, a rating or a version; longer ones are
# kept as ``OversizedNumber`` so the refusal can name the field it was in.
MAX_INTEGER_DIGITS = 20
# NUL (PostgreSQL refuses it in text) and UTF-16 surrogates, which no UTF-8 text contains.
_UNTAKEABLE_TEXT = re.compile("[\x00\ud800-\udfff]")


class OversizedNumber:
    """A JSON integer too long to convert; only ever named in a refusal."""

    def __init__(self, digits: int):
        self.digits = digits


def _parse_int(text: str) -> int | OversizedNumber:
    digits = len(text.lstrip("-"))
    return OversizedNumber(digits) if digits > MAX_INTEGER_DIGITS else int(text)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _too_large(size: int | None, limit: int) -> Rejected:
    said = f"the body is {size} bytes" if size is not None else "the body is longer"
    return Rejected(413, {"_body": [f"{said}; at most {limit} bytes are taken here"]})


def _chunked(request: Request) -> bool:
    return "chunked" in request.headers.get("Transfer-Encoding", "").lower()


def has_body(request: Request) -> bool:
    if request.content_length is not None:
        return request.content_length > 0
    return _chunked(request)


def read_body(request: Request, limit: int) -> bytes:
    """At most ``limit`` bytes of the body, read in chunks; more is refused with 413.

    A declared Content-Length over the limit is refused before a byte is read; a body without
    one (chunked) is read until it ends or passes the limit, never holding more than limit plus
    one chunk.
    """
    declared = request.content_length
    if declared is not None and declared > limit:
        raise _too_large(declared, limit)
    if declared is not None:
        stream = request.stream
    elif _chunked(request):
        # werkzeug hands out an empty stream for a body without a length unless the server says
        # it ends the input itself; both servers here (eventlet's and werkzeug's) decode chunked
        # input and stop at its last chunk, so the raw input is safe to read with a cap.
        stream = request.environ["wsgi.input"]
    else:
        return b""
    body = bytearray()
    while len(body) <= limit:
        try:
            chunk = stream.read(min(READ_CHUNK_BYTES, limit + 1 - len(body)))
        except (OSError, ValueError) as exc:
            # A broken chunked encoding, or a client gone mid-body: nothing to answer to but a
            # 400, and nothing was taken.
            raise Rejected(400, {"_body": [f"the body could not be read: {exc}"]}) from None
        if not chunk:
            return bytes(body)
        body += chunk
    raise _too_large(declared, limit)


def check_content_type(request: Request) -> None:
    """A body must say it is JSON (UTF-8, the only charset JSON has)."""
    given = request.headers.get("Content-Type")
    if request.mimetype != JSON_MEDIA_TYPE:
        said = f"{given!r} is not taken" if given else "no Content-Type was given"
        raise Rejected(415, {"content_type": [f"{said}; send {JSON_MEDIA_TYPE}"]})
    charset = request.mimetype_params.get("charset", "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise Rejected(
            415, {"content_type": [f"charset {charset!r} is not taken; JSON is sent as utf-8"]}
        )


def load_json_object(body: bytes) -> dict:
    """The body as a JSON object whose every string and number the service can take."""
    data = parse_json_object(body)
    problems = untakeable_values(data)
    if problems:
        raise Rejected(400, problems)
    return data


def parse_json_object(body: bytes) -> dict:
    """The body as a JSON object, its values not yet checked (``untakeable_values``): a batch
    checks each item on its own."""
    if not body:
        raise Rejected(400, {"_body": ["the body must be a JSON object; it is empty"]})
    try:
        data = json.loads(
            body.decode("utf-8"), parse_int=_parse_int, parse_constant=_refuse_constant
        )
    except RecursionError:
        raise Rejected(
            400, {"_body": [f"JSON nested too deeply; at most {MAX_DEPTH} levels are taken"]}
        ) from None
    except (UnicodeDecodeError, ValueError) as exc:
        # JSONDecodeError is a ValueError, and so is a refused NaN or Infinity.
        raise Rejected(400, {"_body": [f"not valid JSON: {exc}"]}) from None
    if not isinstance(data, dict):
        raise Rejected(400, {"_body": ["the body must be a JSON object"]})
    return data


def _name(path: str, key: object) -> str:
    # A key that is itself untakeable is named escaped, so the refusal can be sent as UTF-8.
    text = str(key)
    if _UNTAKEABLE_TEXT.search(text):
        text = json.dumps(text)
    return f"{path}.{text}" if path else text


def untakeable_values(data: Any) -> dict[str, list[str]]:
    """Field (dotted path) -> why, for whatever no handler can store: too deep, an oversized
    integer, NUL or a lone surrogate in a key or a string. Iterative, so depth cannot hurt it."""
    problems: dict[str, list[str]] = {}
    stack: list[tuple[str, Any, int]] = [("", data, 1)]
    while stack:
        path, value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > MAX_DEPTH:
                # Named by the field it starts in: "x.0.0.0..." would say nothing more.
                problems.setdefault(path.split(".", 1)[0] or "_body", []).append(
                    f"nested too deeply; at most {MAX_DEPTH} levels are taken"
                )
                continue
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                name = _name(path, key)
                if isinstance(key, str) and _UNTAKEABLE_TEXT.search(key):
                    problems.setdefault(name, []).append("the name holds NUL or a lone surrogate")
                stack.append((name, item, depth + 1))
        elif isinstance(value, OversizedNumber):
            problems.setdefault(path or "_body", []).append(
                f"a number of {value.digits} digits is out of range"
            )
        elif isinstance(value, str):
            found = _UNTAKEABLE_TEXT.search(value)
            if found:
                what = (
                    "NUL (\\u0000)"
                    if found.group() == "\x00"
                    else (f"a lone surrogate (\\u{ord(found.group()):04x})")
                )
                problems.setdefault(path or "_body", []).append(
                    f"the text holds {what} at character {found.start()}, which is not text"
                )
    return problems
