"""What the HTTP channels share: one POST of JSON, its answer mapped to the contract."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx

from gridflow_common.notify_channels import ChannelRefused, ChannelUnavailable


def post_json(
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
        answer = httpx.post(
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
