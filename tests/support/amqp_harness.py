"""The contract suite's harness for the AMQP adapter (the default): the real RabbitMQ, reached
through a loopback TCP switch that can cut the adapter off, as a broker outage or a network
partition would, and let it back on the same port.

``--harness=tests.support.amqp_harness:contract_harness``. Each harness uses a unit code of its
own, so its queue (``gridflow.unit.<code>``, declared by the adapter) holds only its pushes;
``received()`` takes them off that queue over a connection of its own (not through the switch),
repeats included. A broker takes every message a bound queue can hold: there is no permanent
refusal to ask of it, so ``refuse_next`` says so and the suite skips that check.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
import threading
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import kombu

from gridflow_common import contracts as c
from gridflow_common.adapters import AdapterConfig, AdapterContext, Delivery, SecretUnavailable

DEFAULT_AMQP_URI = "amqp://guest:guest@127.0.0.1:5672/"


class TcpSwitch:
    """A loopback TCP forwarder to one address, cut (listener closed, every connection
    dropped) and restored on the same port on command."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._stop = threading.Event()
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.up()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        # The accept loop wakes this often to see whether it was cut.
        listener.settimeout(0.1)
        self._stop = threading.Event()
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener, self._stop), daemon=True).start()

    def down(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            doomed, self._sockets = self._sockets, set()
        for sock in doomed:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                self._sockets |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class AmqpHarness:
    # The adapter's connect timeout is 5 s; a refused connection is answered at once.
    timeout_seconds = 6.0

    def __init__(self) -> None:
        self.broker_uri = os.environ.get("AMQP_URI") or DEFAULT_AMQP_URI
        parts = urlsplit(self.broker_uri)
        self.switch = TcpSwitch(parts.hostname or "127.0.0.1", parts.port or 5672)
        netloc = parts.netloc.rsplit("@", 1)
        credentials = netloc[0] + "@" if len(netloc) == 2 else ""
        self.switched_uri = urlunsplit(
            (parts.scheme, f"{credentials}127.0.0.1:{self.switch.port}", parts.path, "", "")
        )
        self.code = f"contract-{uuid.uuid4().hex[:10]}"
        self._received: list[dict[str, Any]] = []
        self._reader = kombu.Connection(self.broker_uri, connect_timeout=10)

    def config(self) -> AdapterConfig:
        return AdapterConfig(code=self.code, adapter="amqp", endpoint=self.switched_uri)

    def context(self) -> AdapterContext:
        def no_secret(ref: str) -> str:
            raise SecretUnavailable(f"the AMQP harness has no secret ({ref})")

        def no_links(delivery: Delivery, action: str, expires_in: float) -> str:
            raise NotImplementedError("the AMQP adapter sends no links")

        return AdapterContext(
            secret=no_secret,
            sign_link=no_links,
            public_url="http://127.0.0.1:8000",
            now=lambda: dt.datetime.now(dt.timezone.utc),
        )

    def received(self) -> list[dict[str, Any]]:
        channel = self._reader.channel()
        try:
            try:
                queue = kombu.Queue(c.unit_queue(self.code), no_declare=True)(channel)
                while (message := queue.get(no_ack=True, accept=["json"])) is not None:
                    body = json.loads(message.body)
                    key = (message.headers or {}).get("Idempotency-Key") or message.properties.get(
                        "message_id"
                    )
                    self._received.append(
                        {
                            "delivery_id": body.get("delivery_id"),
                            "idempotency_key": key,
                            "message": body,
                        }
                    )
            except Exception as exc:  # the queue is declared at the first push
                if "NOT_FOUND" not in str(exc) and "404" not in str(exc):
                    raise
        finally:
            with contextlib.suppress(Exception):
                channel.close()
        return list(self._received)

    def go_down(self) -> None:
        self.switch.down()

    def come_back(self) -> None:
        self.switch.up()

    def refuse_next(self) -> None:
        raise NotImplementedError(
            "a broker takes every message a bound queue can hold: nothing refuses it for good"
        )

    def status_body(self, delivery: Delivery, word: str, note: str | None) -> dict[str, Any]:
        """A StatusMessageV1, as the unit's system publishes it on the status exchange."""
        return {"case_id": delivery.case_id, "status": word, "note": note, "unit": delivery.unit}

    def set_status(
        self, delivery: Delivery, external_ref: str | None, word: str, note: str | None
    ) -> None:
        raise NotImplementedError("the AMQP adapter does not poll: the unit publishes")

    def close(self) -> None:
        self.switch.down()
        channel = self._reader.channel()
        with contextlib.suppress(Exception):
            channel.queue_delete(c.unit_queue(self.code))
        with contextlib.suppress(Exception):
            self._reader.release()


def contract_harness() -> AmqpHarness:
    return AmqpHarness()
