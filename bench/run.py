"""``make bench``: the bare pipeline, then Gridflow's real topology, on a fresh vhost and database;
a table for people and one JSON line (prefixed ``BENCH_JSON``) for machines.

Options (environment, so ``make bench`` needs none): BENCH_RATE (100 cases/s), BENCH_SECONDS (10),
BENCH_BARE_N (3000), BENCH_GRIDFLOW_N (1500), BENCH_THREADS (16), BENCH_WAIT (120 s),
BENCH_WORKERS (unset: each service's shipped max_workers), BENCH_LOW_RATE (20 cases/s, a second
Gridflow latency phase at a load it can carry; 0 skips it).
"""

from __future__ import annotations

import json
import os
import sys
import time

from bench import bare, gridflow, infra


def _env(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def _fmt(value, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}{unit}"


def _ratio(a, b) -> float | None:
    return round(a / b, 3) if a is not None and b not in (None, 0) else None


def _row(label: str, bare_cell: str = "", gridflow_cell: str = "", ratio_cell: str = "") -> str:
    return f"{label:46} {bare_cell:>16} {gridflow_cell:>18} {ratio_cell:>14}".rstrip()


def _lat(result: dict | None, key: str, field: str = "latency") -> str:
    return _fmt(((result or {}).get(field) or {}).get(key), " ms", 2)


def _counts(result: dict | None) -> str:
    return f"{result['arrived']} of {result['sent']}" if result else ""


def table(results: dict) -> str:
    b, g, r = results["bare"], results["gridflow"], results["ratios"]
    bs, bl, gs, gl = b["saturation"], b["latency"], g["saturation"], g["latency"]
    gq = g.get("latency_low_rate")
    rate, secs = _fmt(results["offered_rate"], "", 0), _fmt(results["offered_seconds"], " s", 0)
    lines = [
        "",
        (
            f"Gridflow benchmark ({results['cores']} cores, vhost {infra.VHOST}, "
            f"database {infra.DB_NAME})"
        ),
        "",
        _row("", "bare", "Gridflow", "Gridflow/bare"),
        _row(
            "saturation: cases/s onto the department queue",
            _fmt(bs.get("cases_per_s"), " /s"),
            _fmt(gs.get("cases_per_s"), " /s"),
            _fmt(r["throughput"], "", 3),
        ),
        _row("  cases arrived", _counts(bs), _counts(gs)),
        _row(
            "  first send to last arrival",
            _fmt(bs.get("elapsed_s"), " s", 2),
            _fmt(gs.get("elapsed_s"), " s", 2),
        ),
        _row("  HTTP 201 answers per second", "", _fmt(gs.get("http_accept_per_s"), " /s")),
        _row(
            "  HTTP response p50 / p99",
            "",
            f"{_lat(gs, 'p50_ms', 'http_response')} / {_lat(gs, 'p99_ms', 'http_response')}",
        ),
        _row(f"latency at {rate} cases/s offered for {secs}"),
        _row(
            "  p50 (sent | answered 201 -> on queue)",
            _lat(bl, "p50_ms"),
            _lat(gl, "p50_ms"),
            _fmt(r["p50"], "", 1),
        ),
        _row("  p99", _lat(bl, "p99_ms"), _lat(gl, "p99_ms"), _fmt(r["p99"], "", 1)),
        _row("  max", _lat(bl, "max_ms"), _lat(gl, "max_ms")),
        _row("  cases arrived", _counts(bl), _counts(gl)),
        _row(
            "  reports sent per second (schedule kept?)",
            "",
            f"{_fmt(gl.get('offered_per_s'), ' /s')} (late up to "
            f"{_fmt((gl.get('sender_late_max_ms') or 0) / 1000, ' s', 1)})",
        ),
        _row(
            "  achieved cases/s",
            _fmt(bl.get("cases_per_s"), " /s"),
            _fmt(gl.get("cases_per_s"), " /s"),
        ),
        _row(
            "  HTTP response p50 / p99",
            "",
            f"{_lat(gl, 'p50_ms', 'http_response')} / {_lat(gl, 'p99_ms', 'http_response')}",
        ),
    ]
    if gq:
        lines += [
            _row(
                f"latency at {_fmt(g['low_rate'], '', 0)} cases/s offered for {secs} "
                "(Gridflow only)"
            ),
            _row(
                "  p50 / p99 / max",
                "",
                f"{_lat(gq, 'p50_ms')} / {_lat(gq, 'p99_ms')} / {_lat(gq, 'max_ms')}",
            ),
            _row("  cases arrived", "", _counts(gq)),
        ]
    bc, gc = bs.get("cpu") or {}, gs.get("cpu") or {}
    lines.append(_row("CPU per case at saturation (user+system)"))
    for svc in bare.STAGES:
        lines.append(
            _row(
                f"  {svc}",
                _fmt(bc.get("cpu_ms_per_case", {}).get(svc), " ms", 2),
                _fmt(gc.get("cpu_ms_per_case", {}).get(svc), " ms", 2),
            )
        )
    lines.append(
        _row(
            "  machine CPU busy (both cores, everything)",
            _fmt(100 * bc["machine_busy"] if bc else None, " %", 0),
            _fmt(100 * gc["machine_busy"] if gc else None, " %", 0),
        )
    )
    pg = g.get("postgres_connections") or {}
    lines += [
        "",
        (
            f"Gridflow max_workers: {g.get('max_workers')}; HTTP clients: {g.get('threads')}; "
            f"PostgreSQL connections peak: {pg.get('peak_bench_db')} to {infra.DB_NAME}, "
            f"{pg.get('peak_server')} on the server (max_connections {pg.get('max_connections')})"
        ),
        f"service log problems: {g.get('log_problems')}",
        (
            f"load average at start {results['load_average_start']}, at end "
            f"{results['load_average_end']} (other work on this machine skews every figure)"
        ),
    ]
    notes = []
    for name, result in (
        ("bare saturation", bs),
        ("bare latency", bl),
        ("Gridflow saturation", gs),
        ("Gridflow latency", gl),
        ("Gridflow low-rate latency", gq or {"complete": True}),
    ):
        if not result.get("complete"):
            created = (
                f", {result['created']} answered 201 within the sending budget"
                if "created" in result
                else ""
            )
            notes.append(
                f"INCOMPLETE: {name}: {result.get('arrived')} of {result.get('sent')} "
                f"arrived within the wait{created}; figures cover what arrived"
            )
        if result.get("error_samples"):
            notes.append(
                f"{name}: non-2xx answers {result['answers']}, e.g. {result['error_samples'][0]}"
            )
    if (g.get("log_problems") or {}).get("too_many_db_clients"):
        notes.append(
            "PostgreSQL refused connections (too many clients) during the run: "
            "failed handlers were retried, and other users of the server saw refusals"
        )
    if not g.get("settled_before_saturation", True):
        notes.append("Gridflow had not drained the latency phase when saturation started")
    if notes:
        lines += ["", *notes]
    lines.append("")
    return "\n".join(lines)


def main() -> int:
    rate = _env("BENCH_RATE", 100)
    seconds = _env("BENCH_SECONDS", 10)
    wait_s = _env("BENCH_WAIT", 120)
    infra.VAR_DIR.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    load_start = infra.load_average()
    infra.log(f"fresh vhost {infra.VHOST} and database {infra.DB_NAME}; logs in {infra.VAR_DIR}")
    infra.fresh_vhost()
    infra.fresh_database()
    bare_result = bare.run(int(_env("BENCH_BARE_N", 3000)), rate, seconds, wait_s)
    gridflow_result = gridflow.run(
        int(_env("BENCH_GRIDFLOW_N", 1500)),
        int(_env("BENCH_THREADS", 16)),
        rate,
        seconds,
        wait_s,
        int(_env("BENCH_WORKERS", 0)) or None,
        _env("BENCH_LOW_RATE", 20) or None,
    )
    b_lat = bare_result["latency"].get("latency") or {}
    g_lat = gridflow_result["latency"].get("latency") or {}
    results = {
        "cores": os.cpu_count(),
        "offered_rate": rate,
        "offered_seconds": seconds,
        "load_average_start": load_start,
        "load_average_end": infra.load_average(),
        "bare": bare_result,
        "gridflow": gridflow_result,
        "ratios": {
            "throughput": _ratio(
                gridflow_result["saturation"].get("cases_per_s"),
                bare_result["saturation"].get("cases_per_s"),
            ),
            "p50": _ratio(g_lat.get("p50_ms"), b_lat.get("p50_ms")),
            "p99": _ratio(g_lat.get("p99_ms"), b_lat.get("p99_ms")),
        },
        "complete": all(
            x.get("complete")
            for x in (
                bare_result["saturation"],
                bare_result["latency"],
                gridflow_result["saturation"],
                gridflow_result["latency"],
            )
        ),
        "wall_s": None,
    }
    results["wall_s"] = round(time.perf_counter() - started, 1)
    print(table(results))
    print("BENCH_JSON " + json.dumps(results, ensure_ascii=False, separators=(",", ":")))
    return 0 if results["complete"] else 1


if __name__ == "__main__":
    sys.exit(main())
