"""What notify's HTTP channels post to, on loopback: a real HTTP server that keeps every request
(method, path, query, headers, body) and answers by script.

``HttpReceiver`` answers each POST with the next scripted answer, or with its ``default`` once
the script is spent; ``answer`` may also be a function of the request (a webhook receiver that
checks the signature itself). Threaded, so a sender with a pool of workers is not served one at
a time (in a plain pytest process; under nameko's eventlet it is green, which is what the
service meets too).
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Posted:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names in lower case
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


@dataclass(frozen=True)
class Reply:
    status: int = 200
    data: Any = None
    headers: tuple[tuple[str, str], ...] = ()


Answerer = Callable[[Posted], Reply]


class HttpReceiver:
    def __init__(self, default: Reply | Answerer = Reply(200, {"errcode": 0, "errmsg": "ok"})):
        self.default = default
        self.script: deque[Reply] = deque()
        self.posted: list[Posted] = []
        self.failed: list[Posted] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                parts = urlsplit(self.path)
                posted = Posted(
                    "POST",
                    parts.path,
                    parse_qs(parts.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )
                reply = receiver._reply(posted)
                body = b"" if reply.data is None else json.dumps(reply.data).encode("utf-8")
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in reply.headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _reply(self, posted: Posted) -> Reply:
        with self._lock:
            scripted = self.script.popleft() if self.script else None
        reply = scripted or (self.default(posted) if callable(self.default) else self.default)
        with self._lock:
            # Kept only when taken: a refused or failed try is not a message received.
            if 200 <= reply.status < 300:
                self.posted.append(posted)
            else:
                self.failed.append(posted)
        return reply

    def then(self, *replies: Reply) -> HttpReceiver:
        with self._lock:
            self.script.extend(replies)
        return self

    def taken(self) -> list[Posted]:
        with self._lock:
            return list(self.posted)

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
