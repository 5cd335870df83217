"""The baseline: Gridflow's hops with no framework, to show what the framework costs.

One process per stage, as in the real topology: intake -> routing -> departments, and departments
feeds the department queue (the end) and ``dispatched``, consumed by the sla and notify stages.
Every stage does, per message, the naive minimum Gridflow does too: consume (kombu), INSERT and
commit (psycopg2), a confirmed persistent publish per output on a connection of its own (a
confirm wait on the consuming connection would drain the next delivery into the callback), ack.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import signal
import time

from bench import infra

EXCHANGE = "bench.bare"
END_KEY = "department"
END_QUEUE = "bench.bare.department.urban_management"
PREFETCH = 100

# stage -> (routing key it consumes, routing keys it publishes to)
STAGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "intake": ("intake", ("routing",)),
    "routing": ("routing", ("departments",)),
    "departments": ("departments", (END_KEY, "dispatched")),
    "sla": ("dispatched", ()),
    "notify": ("dispatched", ()),
}


def stage_queue(stage: str) -> str:
    return f"bench.bare.{stage}"


def _queue(name: str, key: str):
    import kombu

    exchange = kombu.Exchange(EXCHANGE, type="direct", durable=True)
    return kombu.Queue(name, exchange=exchange, routing_key=key, durable=True, auto_delete=False)


def declare_topology() -> None:
    """Every queue before any publish: an unbound persistent message is confirmed and dropped."""
    import kombu

    with kombu.Connection(infra.AMQP_URI, connect_timeout=10) as conn:
        channel = conn.channel()
        for stage, (key, _) in STAGES.items():
            _queue(stage_queue(stage), key).declare(channel=channel)
        _queue(END_QUEUE, END_KEY).declare(channel=channel)


def create_tables() -> None:
    import psycopg2

    conn = psycopg2.connect(infra.PSYCOPG2_DSN)
    try:
        with conn, conn.cursor() as cur:
            for stage in STAGES:
                cur.execute(f"DROP TABLE IF EXISTS bare_{stage}")
                cur.execute(
                    f"CREATE TABLE bare_{stage} (case_id text PRIMARY KEY, "
                    "body text NOT NULL, received_at timestamptz NOT NULL DEFAULT now())"
                )
    finally:
        conn.close()


def stage_main(stage: str, ready, max_seconds: float) -> None:
    import kombu
    import psycopg2

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    key, outputs = STAGES[stage]
    db = psycopg2.connect(infra.PSYCOPG2_DSN)
    insert = f"INSERT INTO bare_{stage} (case_id, body) VALUES (%s, %s)"
    consuming = kombu.Connection(infra.AMQP_URI, connect_timeout=10)
    publishing = kombu.Connection(
        infra.AMQP_URI, connect_timeout=10, transport_options={"confirm_publish": True}
    )
    producer = kombu.Producer(publishing.channel())

    def on_message(message) -> None:
        body = message.body
        case_id = json.loads(body)["case_id"]
        with db, db.cursor() as cur:
            text = body.decode("utf-8") if isinstance(body, bytes) else body
            cur.execute(insert, (case_id, text))
        for out in outputs:
            producer.publish(
                body,
                exchange=EXCHANGE,
                routing_key=out,
                delivery_mode=2,
                content_type="application/json",
                content_encoding="utf-8",
                retry=False,
            )
        message.ack()

    channel = consuming.channel()
    channel.basic_qos(0, PREFETCH, False)
    consumer = kombu.Consumer(
        channel, queues=[_queue(stage_queue(stage), key)], on_message=on_message
    )
    consumer.consume()
    ready.set()
    deadline = time.monotonic() + max_seconds
    try:
        while not stopping and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                consuming.drain_events(timeout=0.5)
    finally:
        consuming.release()
        publishing.release()
        db.close()


def _report(k: int, tag: str) -> bytes:
    return json.dumps(
        {
            "case_id": f"{tag}{k:06d}",
            "sent_at": time.time(),
            "channel": "grid_app",
            "description": "青园社区门口的路灯不亮",
            "location": {"lat": 27.995, "lon": 120.556},
        },
        ensure_ascii=False,
    ).encode("utf-8")


def feeder_main(tag: str, count: int, rate: float | None) -> None:
    """Publish ``count`` reports into stage 1, confirmed: as fast as possible when ``rate`` is
    None, else open-loop at ``rate``/s (each on its own schedule, not after the previous one)."""
    import kombu

    with kombu.Connection(
        infra.AMQP_URI, connect_timeout=10, transport_options={"confirm_publish": True}
    ) as conn:
        producer = kombu.Producer(conn.channel())
        start = time.monotonic()
        for k in range(count):
            if rate:
                delay = start + k / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)  # pacing the open-loop sender
            producer.publish(
                _report(k, tag),
                exchange=EXCHANGE,
                routing_key="intake",
                delivery_mode=2,
                content_type="application/json",
                content_encoding="utf-8",
                retry=False,
            )


def _phase(
    ctx,
    tag: str,
    count: int,
    rate: float | None,
    wait_s: float,
    meter: infra.CpuMeter | None = None,
) -> dict:
    sink = infra.Sink(ctx, [(EXCHANGE, END_KEY, END_QUEUE)], f"bare-{tag}", wait_s + 60)
    sink.start()
    sink.expect(count)
    if meter:
        meter.start()
    feeder = ctx.Process(target=feeder_main, args=(tag, count, rate), name=f"bench-feed-{tag}")
    feeder.start()
    feeder.join(wait_s)
    if feeder.is_alive():
        feeder.terminate()
        feeder.join(5)
    records = [r for r in sink.finish(wait_s) if r[0] and r[0].startswith(tag)]
    sent = [r[2] for r in records]
    received = [r[1] for r in records]
    result: dict = {"sent": count, "arrived": len(records), "complete": len(records) >= count}
    if records:
        first_sent, last_received = min(sent), max(received)
        result["elapsed_s"] = round(last_received - first_sent, 3)
        result["cases_per_s"] = round(len(records) / max(last_received - first_sent, 1e-9), 1)
        result["latency"] = infra.latency_summary([r[1] - r[2] for r in records])
    if meter:
        result["cpu"] = meter.stop(len(records))
    return result


def wait_drained(timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    names = [stage_queue(s) for s in STAGES]
    while time.monotonic() < deadline:
        if sum(infra.queue_depths(names).values()) == 0:
            return True
        time.sleep(0.5)  # bounded by the deadline above
    return False


def run(
    saturation_count: int = 3000, rate: float = 100.0, seconds: float = 10.0, wait_s: float = 120.0
) -> dict:
    ctx = multiprocessing.get_context("spawn")
    create_tables()
    declare_topology()
    stages = []
    try:
        for stage in STAGES:
            ready = ctx.Event()
            process = ctx.Process(
                target=stage_main, args=(stage, ready, 600), name=f"bench-{stage}"
            )
            process.start()
            stages.append((process, ready))
        for process, ready in stages:
            if not ready.wait(30):
                raise RuntimeError(f"bare stage {process.name} did not start")
        infra.log("bare: warm-up (50 cases)")
        _phase(ctx, "W", 50, None, 30)
        wait_drained()
        infra.log(f"bare: latency, {rate:.0f} cases/s offered for {seconds:.0f} s")
        pids = {
            process.name.removeprefix("bench-"): process.pid
            for process, _ in stages
            if process.pid is not None
        }
        latency = _phase(
            ctx, "L", int(rate * seconds), rate, seconds + wait_s, infra.CpuMeter(pids)
        )
        wait_drained()
        infra.log(f"bare: saturation, {saturation_count} cases pushed at once")
        saturation = _phase(ctx, "S", saturation_count, None, wait_s, infra.CpuMeter(pids))
    finally:
        for process, _ in stages:
            if process.is_alive():
                process.terminate()
        for process, _ in stages:
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join(5)
    return {
        "saturation": saturation,
        "latency": latency,
        "offered_rate": rate,
        "offered_seconds": seconds,
    }


if __name__ == "__main__":
    # The bare pipeline alone (the vhost and database must exist: `python -m bench.run` makes them).
    print(json.dumps(run(), indent=2))
