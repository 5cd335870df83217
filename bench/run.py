"""``make bench``: the bare pipeline, then Gridflow's real topology, on a fresh vhost and database;
a table for people and one JSON line (prefixed ``BENCH_JSON``) for machines.

Options (environment, so ``make bench`` needs none): BENCH_RATE (100 cases/s), BENCH_SECONDS (10),
BENCH_BARE_N (3000), BENCH_GRIDFLOW_N (1500), BENCH_THREADS (16), BENCH_WAIT (120 s).
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


def _incomplete(result: dict) -> str:
    if result.get("complete"):
        return ""
    return "  INCOMPLETE"


def table(results: dict) -> str:
    b, g, r = results["bare"], results["gridflow"], results["ratios"]
    bs, bl, gs, gl = b["saturation"], b["latency"], g["saturation"], g["latency"]
    lines = [
        "",
        f"Gridflow benchmark ({results['cores']} cores, vhost {infra.VHOST}, "
        f"database {infra.DB_NAME})",
        "",
        f"{'':44} {'bare':>16} {'Gridflow':>16} {'Gridflow/bare':>14}",
        f"{'saturation: cases/s to the department queue':44} "
        f"{_fmt(bs.get('cases_per_s'), ' /s'):>16} {_fmt(gs.get('cases_per_s'), ' /s'):>16} "
        f"{_fmt(r['throughput'], '', 3):>14}",
        f"{'  cases sent / arrived':44} {bs['sent']:>8} / {bs['arrived']:<5}"
        f" {gs['sent']:>8} / {gs['arrived']:<5}",
        f"{'  first send to last arrival':44} {_fmt(bs.get('elapsed_s'), ' s', 2):>16} "
        f"{_fmt(gs.get('elapsed_s'), ' s', 2):>16}",
        f"{'  HTTP 201 rate (Gridflow intake)':44} {'':>16} "
        f"{_fmt(gs.get('http_accept_per_s'), ' /s'):>16}",
        f"{'  HTTP response p50 / p99':44} {'':>16} "
        f"{_fmt((gs.get('http_response') or {}).get('p50_ms'), '', 0):>7} / "
        f"{_fmt((gs.get('http_response') or {}).get('p99_ms'), ' ms', 0):<7}",
        f"latency at {_fmt(results['offered_rate'], ' cases/s', 0)} offered for "
        f"{_fmt(results['offered_seconds'], ' s', 0)}",
        f"{'  p50 (sent/answered 201 -> on dept. queue)':44} "
        f"{_fmt((bl.get('latency') or {}).get('p50_ms'), ' ms', 2):>16} "
        f"{_fmt((gl.get('latency') or {}).get('p50_ms'), ' ms', 2):>16} "
        f"{_fmt(r['p50'], '', 2):>14}",
        f"{'  p99':44} {_fmt((bl.get('latency') or {}).get('p99_ms'), ' ms', 2):>16} "
        f"{_fmt((gl.get('latency') or {}).get('p99_ms'), ' ms', 2):>16} "
        f"{_fmt(r['p99'], '', 2):>14}",
        f"{'  max':44} {_fmt((bl.get('latency') or {}).get('max_ms'), ' ms', 2):>16} "
        f"{_fmt((gl.get('latency') or {}).get('max_ms'), ' ms', 2):>16}",
        f"{'  achieved cases/s':44} {_fmt(bl.get('cases_per_s'), ' /s'):>16} "
        f"{_fmt(gl.get('cases_per_s'), ' /s'):>16}",
        f"{'  cases sent / arrived':44} {bl['sent']:>8} / {bl['arrived']:<5}"
        f" {gl['sent']:>8} / {gl['arrived']:<5}",
        f"{'  HTTP response p50 / p99':44} {'':>16} "
        f"{_fmt((gl.get('http_response') or {}).get('p50_ms'), '', 0):>7} / "
        f"{_fmt((gl.get('http_response') or {}).get('p99_ms'), ' ms', 0):<7}",
    ]
    notes = []
    for name, result in (("bare saturation", bs), ("bare latency", bl),
                         ("Gridflow saturation", gs), ("Gridflow latency", gl)):
        if not result.get("complete"):
            notes.append(f"INCOMPLETE: {name}: {result.get('arrived')} of "
                         f"{result.get('created', result.get('sent'))} arrived within the wait; "
                         "figures cover what arrived")
        if result.get("error_samples"):
            notes.append(f"{name}: non-2xx answers {result['answers']}, e.g. "
                         f"{result['error_samples'][0]}")
    if not g.get("settled_before_saturation", True):
        notes.append("Gridflow had not drained the latency phase when saturation started")
    lines += ["", *notes] if notes else []
    lines.append("")
    return "\n".join(lines)


def main() -> int:
    rate = _env("BENCH_RATE", 100)
    seconds = _env("BENCH_SECONDS", 10)
    wait_s = _env("BENCH_WAIT", 120)
    infra.VAR_DIR.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    infra.log(f"fresh vhost {infra.VHOST} and database {infra.DB_NAME}; logs in {infra.VAR_DIR}")
    infra.fresh_vhost()
    infra.fresh_database()
    bare_result = bare.run(int(_env("BENCH_BARE_N", 3000)), rate, seconds, wait_s)
    gridflow_result = gridflow.run(int(_env("BENCH_GRIDFLOW_N", 1500)),
                                   int(_env("BENCH_THREADS", 16)), rate, seconds, wait_s)
    b_lat = bare_result["latency"].get("latency") or {}
    g_lat = gridflow_result["latency"].get("latency") or {}
    results = {
        "cores": os.cpu_count(),
        "offered_rate": rate,
        "offered_seconds": seconds,
        "bare": bare_result,
        "gridflow": gridflow_result,
        "ratios": {
            "throughput": _ratio(gridflow_result["saturation"].get("cases_per_s"),
                                 bare_result["saturation"].get("cases_per_s")),
            "p50": _ratio(g_lat.get("p50_ms"), b_lat.get("p50_ms")),
            "p99": _ratio(g_lat.get("p99_ms"), b_lat.get("p99_ms")),
        },
        "complete": all(x.get("complete") for x in (
            bare_result["saturation"], bare_result["latency"],
            gridflow_result["saturation"], gridflow_result["latency"])),
        "wall_s": None,
    }
    results["wall_s"] = round(time.perf_counter() - started, 1)
    print(table(results))
    print("BENCH_JSON " + json.dumps(results, ensure_ascii=False, separators=(",", ":")))
    return 0 if results["complete"] else 1


if __name__ == "__main__":
    sys.exit(main())
