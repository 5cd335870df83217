"""What the HTTP channels share: one POST of JSON, its answer mapped to the contract, over a
keep-alive client the channel holds (``HttpChannel``).

A client per channel, not per message: making an ``httpx`` client loads the CA bundle and
costs tens of milliseconds of CPU (``make bench-notify`` measured 5 POSTs/s from 8 threads with
a client per POST, against 56/s over kept connections). ``httpx.Client`` is safe to share
between the delivery worker's threads; its pool keeps the connections.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

import httpx

from gridflow_common.notify_channels import ChannelRefused, ChannelUnavailable, NotifyChannel


class HttpChannel(NotifyChannel):
    """A channel that POSTs JSON: one keep-alive client, made on first use, let go at close."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._client: httpx.Client | None = None
        self._client_lock = threading.Lock()

    def client(self) -> httpx.Client:
        with self._client_lock:
            if self._client is None:
                self._client = httpx.Client(
                    limits=httpx.Limits(max_connections=32, max_keepalive_connections=16)
                )
            return self._client

    def close(self) -> None:
        with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()


def post_json(
    client: httpx.Client,
    url: str,
    body: Mapping[str, Any] | bytes,
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float,
    params: Mapping[str, str] | None = None,
) -> httpx.Response:
    """POST ``body`` (JSON); the answer when it is 2xx. No answer, a timeout, 5xx or 429 is
    ``ChannelUnavailable`` (with Retry-After when given); another 4xx is ``ChannelRefused``.
    The URL's query (a key) is never repeated in an error."""
    content = (
        body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode("utf-8")
    )
    sent_headers = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
    try:
        answer = client.post(
            url, content=content, headers=sent_headers, params=params, timeout=timeout
        )
    except httpx.TimeoutException:
        raise ChannelUnavailable(f"no answer within {timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise ChannelUnavailable(f"cannot reach the gateway ({type(exc).__name__})") from None
    if answer.status_code == 429 or answer.status_code >= 500:
        raise ChannelUnavailable(f"the gateway answered {answer.status_code}", _retry_after(answer))
    if answer.status_code >= 400:
        raise ChannelRefused(f"the gateway refused the message ({answer.status_code})")
    return answer


def json_answer(answer: httpx.Response) -> dict:
    try:
        data = answer.json()
    except ValueError:
        raise ChannelUnavailable("the gateway's answer is not JSON") from None
    if not isinstance(data, dict):
        raise ChannelUnavailable("the gateway's answer is not a JSON object")
    return data


def _retry_after(answer: httpx.Response) -> float | None:
    value = answer.headers.get("Retry-After", "").strip()
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None
