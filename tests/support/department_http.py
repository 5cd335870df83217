"""A department's system on loopback, as the webhook adapter meets it, and what such a system
uses to post a signed status back to Gridflow.

The double is a real HTTP server in a process of its own. It has to be: once nameko's web
module is imported, ``http.server`` in the test process is eventlet-green and serves one
connection at a time, so a request the double is told to hang on would stall every other
(STYLE.md, traps). A second, always-up HTTP server in that process (the *control* port) is how
a test drives it: answer normally, fail or refuse the next requests or all of them, hang, go
down (stop listening and cut open connections: the client sees "connection refused") and come
back on the same port; and read back every request it received.

``HttpDouble`` is that machinery, shared with the GeoReport v2 double (``georeport.py``): the
system itself is an *app* object (``inspect`` a request for the record, ``answer`` it, obey
``control`` actions). ``DepartmentDouble`` runs ``DepartmentApp``: a webhook receiver that
verifies each push's HMAC signature with its secret, records whether it did, and answers a
repeated idempotency key with the id it gave the first time, as a department system that drops
copies does.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import httpx

from gridflow_common import signing

REPO = Path(__file__).resolve().parents[2]
# The double's HMAC secret travels to its process in the environment, not on a command line.
SECRET_ENV = "GRIDFLOW_DOUBLE_SECRET"
STATUS_PATH = "/api/v1/departments/{code}/updates"
# Requests scripted answers apply to unless a spec names others: pushes, not health checks.
DEFAULT_FAULT_METHODS = ("POST",)


# -- The server side (runs in the double's own process) ----------------------------------------
@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names in lower case
    body: bytes


@dataclass
class Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json; charset=utf-8"


def json_answer(status: int, data: Any) -> Answer:
    return Answer(status, json.dumps(data, ensure_ascii=False).encode("utf-8"))


class App(Protocol):
    def inspect(self, request: Request) -> dict[str, Any]:
        """What to add to the request's record (before any scripted hang)."""

    def answer(self, request: Request) -> Answer:
        """The system's own answer, when no scripted answer stands in for it."""

    def control(self, action: str, data: dict[str, Any]) -> Any:
        """A test's command to the system (``POST /app/<action>`` on the control port)."""

    def reset(self) -> None:
        """Forget everything (between tests)."""


class Double:
    """The listening side: records, scripted answers, down and up. Thread-safe: each
    connection is served on its own thread."""

    def __init__(self, port: int, app: App):
        self.port = port
        self.app = app
        self._lock = threading.Lock()
        self._records: list[dict[str, Any]] = []
        # Answer specs for the next matching requests, then the standing one (None: the app's).
        self._script: deque[dict[str, Any]] = deque()
        self._standing: dict[str, Any] | None = None
        self._server: ThreadingHTTPServer | None = None
        self._connections: set[socket.socket] = set()

    # listening
    def up(self) -> None:
        with self._lock:
            if self._server is not None:
                return
            handler = type("Handler", (_Handler,), {"double": self})
            server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
            server.daemon_threads = True
            self._server = server
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()

    def down(self) -> None:
        with self._lock:
            server, self._server = self._server, None
            connections = list(self._connections)
        if server is None:
            return
        server.shutdown()
        server.server_close()
        # An outage cuts kept-alive connections too: a client must not be served on one.
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def is_up(self) -> bool:
        with self._lock:
            return self._server is not None

    def connected(self, sock: socket.socket) -> None:
        with self._lock:
            self._connections.add(sock)

    def disconnected(self, sock: socket.socket) -> None:
        with self._lock:
            self._connections.discard(sock)

    # scripting
    def script(self, specs: list[dict[str, Any]]) -> None:
        with self._lock:
            self._script.extend(specs)

    def stand(self, spec: dict[str, Any] | None) -> None:
        with self._lock:
            self._standing = spec
            if spec is None:
                self._script.clear()

    def records(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._records]

    def reset(self) -> None:
        with self._lock:
            self._records.clear()
            self._script.clear()
            self._standing = None
        self.app.reset()

    # serving
    def serve(self, request: Request) -> Answer | None:
        record: dict[str, Any] = {
            "method": request.method,
            "path": request.path,
            "query": request.query,
            "headers": request.headers,
            "body": request.body.decode("utf-8", "replace"),
            "at": time.time(),
            "answered": None,
            **self.app.inspect(request),
        }
        with self._lock:
            spec = self._pick(request.method)
            record["n"] = len(self._records)
            self._records.append(record)
        if spec and spec.get("hang"):
            time.sleep(float(spec["hang"]))
        if spec and spec.get("drop"):
            return None
        if spec and spec.get("status") is not None:
            body = str(spec.get("body", "")).encode("utf-8") * int(spec.get("repeat", 1))
            answer = Answer(
                int(spec["status"]),
                body,
                dict(spec.get("headers") or {}),
                str(spec.get("content_type", "application/json; charset=utf-8")),
            )
        else:
            answer = self.app.answer(request)
        with self._lock:
            record["answered"] = answer.status
        return answer

    def _pick(self, method: str) -> dict[str, Any] | None:
        if self._script and method in self._script[0].get("methods", DEFAULT_FAULT_METHODS):
            return self._script.popleft()
        if self._standing and method in self._standing.get("methods", DEFAULT_FAULT_METHODS):
            return self._standing
        return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the adapter's client expects
    # The head and the body leave in two writes: with Nagle on, the second waits for the
    # client's delayed ACK (40 ms a request here), which a real server does not make anyone pay.
    disable_nagle_algorithm = True
    double: Double

    def setup(self) -> None:
        super().setup()
        self.double.connected(self.connection)

    def finish(self) -> None:
        self.double.disconnected(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the records are the log

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_GET

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        request = Request(
            self.command,
            split.path,
            parse_qs(split.query, keep_blank_values=True),
            {k.lower(): v for k, v in self.headers.items()},
            body,
        )
        answer = self.double.serve(request)
        if answer is None:
            self.close_connection = True
            return
        try:
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(answer.body)
        except OSError:
            self.close_connection = True  # went down while hanging: nothing to answer to


class _ControlHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    double: Double

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_GET

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        data = json.loads(self.rfile.read(length) or b"{}") if length else {}
        d = self.double
        path = self.path
        try:
            if path == "/ping":
                out: Any = {"up": d.is_up()}
            elif path == "/records":
                out = d.records()
            elif path == "/script":
                d.script(list(data["answers"]))
                out = {}
            elif path == "/stand":
                d.stand(data.get("answer"))
                out = {}
            elif path == "/down":
                d.down()
                out = {}
            elif path == "/up":
                d.up()
                out = {}
            elif path == "/reset":
                d.reset()
                out = {}
            elif path.startswith("/app/"):
                out = d.app.control(path[len("/app/") :], data)
            else:
                raise KeyError(path)
            status, body = 200, json.dumps(out, ensure_ascii=False).encode("utf-8")
        except Exception as exc:  # the test reads why its command failed
            status, body = 400, json.dumps({"error": repr(exc)}).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class DepartmentApp:
    """A department system's webhook receiver: every POST is a push. It checks the signature
    with its secret (and records the verdict), then answers ``ok_status`` with its own id for
    the case, or 200 with the first id again for an idempotency key it has seen."""

    def __init__(self, options: Mapping[str, Any], secret: str):
        self.secret = secret
        self.ok_status = int(options.get("ok_status", 202))
        self._lock = threading.Lock()
        self._ids: dict[str, str] = {}

    def inspect(self, request: Request) -> dict[str, Any]:
        if request.method != "POST":
            return {}
        headers = request.headers
        try:
            signing.verify(
                self.secret,
                headers.get(signing.TIMESTAMP_HEADER.lower()),
                headers.get(signing.SIGNATURE_HEADER.lower()),
                request.body,
                now=time.time(),
            )
            problem = None
        except signing.BadSignature as exc:
            problem = str(exc)
        try:
            message = json.loads(request.body)
        except ValueError:
            message = None
        return {
            "signature_ok": problem is None,
            "signature_problem": problem,
            "idempotency_key": headers.get(signing.IDEMPOTENCY_HEADER.lower()),
            "delivery_id": headers.get("x-gridflow-delivery"),
            "message": message,
        }

    def answer(self, request: Request) -> Answer:
        if request.method == "HEAD":
            return Answer(200)
        if request.method == "GET":
            if request.path == "/health":
                return json_answer(200, {"ok": True})
            return json_answer(404, {"error": "not found"})
        key = request.headers.get(signing.IDEMPOTENCY_HEADER.lower()) or ""
        with self._lock:
            if key in self._ids:
                return json_answer(200, {"id": self._ids[key], "duplicate": True})
            self._ids[key] = f"D-{len(self._ids) + 1}"
            return json_answer(self.ok_status, {"id": self._ids[key]})

    def control(self, action: str, data: dict[str, Any]) -> Any:
        if action == "ok_status":
            self.ok_status = int(data["status"])
            return {}
        raise KeyError(action)

    def reset(self) -> None:
        with self._lock:
            self._ids.clear()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--app", required=True, help="module:Class of the system")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--control-port", type=int, required=True)
    parser.add_argument("--options", default="{}", help="a JSON object for the app")
    args = parser.parse_args(argv)
    module, _, name = args.app.partition(":")
    app_class = getattr(importlib.import_module(module), name)
    app = app_class(json.loads(args.options), os.environ.get(SECRET_ENV, ""))
    double = Double(args.port, app)
    double.up()
    control = ThreadingHTTPServer(
        ("127.0.0.1", args.control_port), type("Control", (_ControlHandler,), {"double": double})
    )
    control.daemon_threads = True
    control.serve_forever()
    return 0


# -- The test side ------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HttpDouble:
    """Starts a double's process and drives it over its control port. Safe to call from
    several threads (one control call at a time)."""

    def __init__(
        self,
        app: str,
        options: Mapping[str, Any] | None = None,
        secret: str = "",
        start_timeout: float = 20.0,
    ):
        self.port = free_port()
        self.control_port = free_port()
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - kept open for the process
            prefix="gridflow-double-", suffix=".log", delete=False
        )
        env = {**os.environ, SECRET_ENV: secret}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.department_http",
                "--app",
                app,
                "--port",
                str(self.port),
                "--control-port",
                str(self.control_port),
                "--options",
                json.dumps(dict(options or {})),
            ],
            cwd=REPO,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._lock = threading.Lock()
        self._control = httpx.Client(base_url=f"http://127.0.0.1:{self.control_port}", timeout=10.0)
        deadline = time.monotonic() + start_timeout
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"the double exited with {self._process.returncode}: "
                    + Path(self._log.name).read_text(errors="replace")[-2000:]
                )
            try:
                self._control.get("/ping")
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    self.close()
                    raise TimeoutError(
                        f"the double did not start within {start_timeout} s"
                    ) from None
                time.sleep(0.05)  # bounded: the process is starting

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _call(self, path: str, data: Mapping[str, Any] | None = None) -> Any:
        with self._lock:
            answer = (
                self._control.get(path) if data is None else self._control.post(path, json=data)
            )
        if answer.status_code != 200:
            raise RuntimeError(f"the double refused {path}: {answer.text}")
        return answer.json()

    def records(self) -> list[dict[str, Any]]:
        """Every request it received, in order (a hanging one as soon as it arrived)."""
        return self._call("/records")

    def script(self, *answers: Mapping[str, Any]) -> None:
        """The next matching requests get these answers, one each: ``status``, ``body``
        (repeated ``repeat`` times), ``headers``, ``content_type``, ``hang`` (seconds before
        answering; with no status the system answers after it), ``drop`` (close the
        connection unanswered), ``methods`` (default POST only)."""
        self._call("/script", {"answers": [dict(a) for a in answers]})

    def stand(self, answer: Mapping[str, Any] | None) -> None:
        """Every matching request gets ``answer`` until told otherwise; None: the system
        answers for itself again (and the script is dropped)."""
        self._call("/stand", {"answer": None if answer is None else dict(answer)})

    def answer_normally(self) -> None:
        self.stand(None)

    def go_down(self) -> None:
        """Stop listening and cut every open connection: connections are refused."""
        self._call("/down", {})

    def come_back(self) -> None:
        """Listen again, on the same port."""
        self._call("/up", {})

    def reset(self) -> None:
        self._call("/reset", {})

    def app(self, action: str, **data: Any) -> Any:
        return self._call(f"/app/{action}", data)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._control.close()
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)
        self._log.close()
        with contextlib.suppress(OSError):
            os.unlink(self._log.name)

    def __enter__(self) -> HttpDouble:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DepartmentDouble(HttpDouble):
    """A department's webhook receiver (``DepartmentApp``) holding ``secret``."""

    PUSH_PATH = "/gridflow/cases"

    def __init__(self, secret: str, ok_status: int = 202):
        self.secret = secret
        super().__init__(
            "tests.support.department_http:DepartmentApp", {"ok_status": ok_status}, secret
        )

    @property
    def endpoint(self) -> str:
        return self.url + self.PUSH_PATH

    def pushes(self) -> list[dict[str, Any]]:
        """Every POST it received, in order, duplicates included, whatever it answered."""
        return [r for r in self.records() if r["method"] == "POST"]

    def answer_ok(self, status: int = 202) -> None:
        self.answer_normally()
        self.app("ok_status", status=status)

    def fail(self, status: int = 503, retry_after: str | None = None, times: int | None = None):
        """Answer pushes with ``status`` (and a Retry-After) ``times`` times, or until told."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        self._fault({"status": status, "headers": headers, "body": '{"error":"busy"}'}, times)

    def refuse(self, status: int = 400, reason: str = "bad request", times: int | None = 1):
        self._fault(
            {"status": status, "body": json.dumps({"error": reason}, ensure_ascii=False)}, times
        )

    def hang(self, seconds: float, times: int | None = None) -> None:
        """Hold pushes ``seconds`` before answering (normally): longer than a read timeout."""
        self._fault({"hang": seconds}, times)

    def _fault(self, spec: dict[str, Any], times: int | None) -> None:
        if times is None:
            self.stand(spec)
        else:
            self.script(*([spec] * times))


# -- What a department's system uses to post a status back --------------------------------------
def status_headers(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The headers of a status post signed with the department's ``secret``."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "Content-Type": "application/json; charset=utf-8",
        signing.TIMESTAMP_HEADER: str(ts),
        signing.SIGNATURE_HEADER: signing.sign(secret, ts, body),
    }


def post_status(
    base_url: str,
    code: str,
    message: Mapping[str, Any],
    secret: str,
    *,
    timestamp: int | None = None,
    client: httpx.Client | None = None,
) -> httpx.Response:
    """POST a StatusMessageV1 to Gridflow as department (or unit) ``code`` would, signed."""
    body = json.dumps(dict(message), ensure_ascii=False).encode("utf-8")
    url = base_url.rstrip("/") + STATUS_PATH.format(code=code)
    headers = status_headers(secret, body, timestamp)
    if client is not None:
        return client.post(url, content=body, headers=headers)
    return httpx.post(url, content=body, headers=headers, timeout=10.0)


@contextlib.contextmanager
def department_double(secret: str) -> Iterator[DepartmentDouble]:
    double = DepartmentDouble(secret)
    try:
        yield double
    finally:
        double.close()


if __name__ == "__main__":
    # Run as ``python -m``: import this module under its own name first, so that an app in
    # another module (georeport) and this process share one copy of these classes.
    from tests.support.department_http import main as _main

    sys.exit(_main())
