"""What the HTTP adapters (webhook, open311) share: one keep-alive client with explicit
timeouts, answers read up to a cap, and one reading of an HTTP outcome as the contract's
``PushFailed`` / ``PushRefused``.

How an answer is taken: 2xx done; 401, 403 (a key being rotated), 408, 425, 429 and 5xx "try
later" (``Retry-After`` in seconds or as an HTTP date is honoured); 3xx "try later" too, since a
signed or keyed body is not re-sent where the city's data did not say, and an operator must
correct the endpoint; any other 4xx a refusal. No answer within the timeouts, a refused or reset
connection or a failed TLS handshake is "try later", naming what happened. Messages name the
host and port, never the path or query (which may carry a token), and never a secret, even one
the server echoes back.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from gridflow_common.adapters.contract import PushFailed, PushRefused

USER_AGENT = "Gridflow/1 (department adapter)"
# What of an answer is read: enough for a JSON object with an id or an error, never a flood.
ANSWER_LIMIT = 64 * 1024
# What of an answer goes into a reason (kept, logged and shown to operators).
REASON_LIMIT = 200
# Answers that mean "not now": timeout, too early, too many requests; and the department not
# taking Gridflow's signature or key (401, 403). Those follow a key rotation done on one side
# before the other: refusing at once would make every case undeliverable there in the minutes
# an operator needs to put the new key in place, while the schedule gives them hours, with the
# circuit breaker keeping the load off meanwhile.
RETRY_STATUSES = frozenset({401, 403, 408, 425, 429})
# The longest Retry-After taken as said: a system asking for more (a bug, or hostile) would hold
# a unit's deliveries past any deadline; Gridflow's own schedule decides beyond a day.
RETRY_AFTER_CAP = 24 * 3600.0


@dataclass(frozen=True)
class Reply:
    status: int
    text: str  # at most ANSWER_LIMIT bytes of the body, decoded
    retry_after: str | None
    where: str  # host:port


class AnswerTooSlow(httpx.TransportError):
    """The answer kept coming past the adapter's timeouts (each read was within them)."""


class HttpCaller:
    """One ``httpx.Client`` (its pool keeps connections alive between calls) with the
    adapter's timeouts. Thread-safe, as httpx's client is."""

    def __init__(self, connect_timeout: float, read_timeout: float, now: Callable[[], dt.datetime]):
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._now = now
        self.client = httpx.Client(
            timeout=httpx.Timeout(
                connect=connect_timeout, read=read_timeout, write=read_timeout, pool=connect_timeout
            ),
            follow_redirects=False,
            transport=httpx.HTTPTransport(
                # An idle connection is dropped before common servers drop theirs (Node's
                # 5 s): a request sent on one the server is closing fails without an answer.
                limits=httpx.Limits(keepalive_expiry=4.0),
                # A request leaves as two writes (head, then body): without NODELAY the body
                # can wait for the server's delayed ACK, tens of milliseconds a push.
                socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
            ),
            # Identity: the answer is read raw and capped, so a compressed flood stays small.
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
        )

    def call(self, method: str, url: str, **kwargs: Any) -> Reply:
        """The answer, or ``PushFailed`` naming why there was none."""
        where = host(url)
        deadline = time.monotonic() + self.connect_timeout + self.read_timeout
        try:
            with self.client.stream(method, url, **kwargs) as answer:
                return Reply(
                    answer.status_code,
                    _read_capped(answer, deadline, where),
                    answer.headers.get("Retry-After"),
                    where,
                )
        except httpx.HTTPError as exc:
            raise PushFailed(self.transport_problem(exc, where)) from None

    def transport_problem(self, exc: httpx.HTTPError, where: str) -> str:
        if isinstance(exc, httpx.ConnectTimeout):
            return f"no connection to {where} within {self.connect_timeout:g} s (connect timeout)"
        if isinstance(exc, httpx.ReadTimeout):
            return f"{where} did not answer within {self.read_timeout:g} s (read timeout)"
        if isinstance(exc, httpx.WriteTimeout):
            return f"{where} did not take the body within {self.read_timeout:g} s (write timeout)"
        if isinstance(exc, httpx.PoolTimeout):
            return f"no free connection to {where} within {self.connect_timeout:g} s"
        if isinstance(exc, AnswerTooSlow):
            return str(exc)
        cause = _root_cause(exc)
        if isinstance(cause, ssl.SSLError):
            why = getattr(cause, "reason", None) or type(cause).__name__
            return f"TLS with {where} failed: {why}"
        if isinstance(cause, ConnectionRefusedError):
            return f"{where} refused the connection (nothing listening)"
        if isinstance(cause, ConnectionResetError) or isinstance(exc, httpx.RemoteProtocolError):
            return f"{where} closed the connection without an answer"
        if isinstance(exc, httpx.ConnectError):
            return f"cannot connect to {where}: {type(cause).__name__}: {short(str(cause))}"
        return f"{where}: {type(exc).__name__}: {short(str(exc))}"

    def raise_unless_done(self, reply: Reply, secret: str | None, what: str) -> None:
        """``PushFailed`` or ``PushRefused`` for an answer that is not 2xx."""
        status, where = reply.status, reply.where
        if 200 <= status < 300:
            return
        if status in RETRY_STATUSES or status >= 500:
            raise PushFailed(
                f"{where} answered HTTP {status}{excerpt(reply.text, secret)}",
                retry_after=self.retry_after(reply.retry_after),
            )
        if 300 <= status < 400:
            raise PushFailed(
                f"{where} answered HTTP {status} (a redirect): Gridflow does not follow one; "
                "correct the endpoint in adapters.csv"
            )
        raise PushRefused(f"{where} refused {what}: HTTP {status}{excerpt(reply.text, secret)}")

    def retry_after(self, value: str | None) -> float | None:
        """Seconds from a Retry-After value (delta-seconds or an HTTP date), else None."""
        if not value:
            return None
        value = value.strip()
        if value.isdigit():
            return min(float(value), RETRY_AFTER_CAP)
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        return min(max(0.0, (when - self._now()).total_seconds()), RETRY_AFTER_CAP)

    def close(self) -> None:
        self.client.close()


def _read_capped(answer: httpx.Response, deadline: float, where: str) -> str:
    """At most ``ANSWER_LIMIT`` bytes of the body, as text. Each read is bounded by the read
    timeout; the deadline bounds them all together, against a server that drips its answer."""
    chunks: list[bytes] = []
    size = 0
    for chunk in answer.iter_raw():
        chunks.append(chunk)
        size += len(chunk)
        if size >= ANSWER_LIMIT:
            break
        if time.monotonic() > deadline:
            raise AnswerTooSlow(f"{where} kept sending its answer past the timeouts")
    return b"".join(chunks)[:ANSWER_LIMIT].decode("utf-8", "replace")


def host(url: str) -> str:
    """Where a request went, as host:port: never the path or query, which may carry tokens."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.hostname}:{port}"


def excerpt(text: str, secret: str | None) -> str:
    """``": <the start of the answer>"`` on one line, without the secret should a hostile or
    careless server echo it back; empty for an empty answer."""
    flat = " ".join(text.split())
    if secret:
        flat = flat.replace(secret, "***")
    if not flat:
        return ""
    return ": " + short(flat)


def short(text: str) -> str:
    return text if len(text) <= REASON_LIMIT else text[:REASON_LIMIT] + "…"


def problems(messages: object) -> str:
    """A marshmallow error dict as one line: ``field: what; field: what``."""
    if isinstance(messages, Mapping):
        return "; ".join(f"{field}: {problems(value)}" for field, value in messages.items())
    if isinstance(messages, list):
        return " ".join(str(m) for m in messages)
    return str(messages)


def _root_cause(exc: BaseException) -> BaseException:
    seen = exc
    for _ in range(10):  # a chain is short; a cycle must not spin
        nxt = seen.__cause__ or seen.__context__
        if nxt is None:
            break
        seen = nxt
    return seen
