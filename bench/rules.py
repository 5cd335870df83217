"""Routing decisions per second as a pure function (no broker, no database): a realistic rules
file over Lucheng (``docs/examples/rules_lucheng.yaml``, 38 rules) beside, in the same run, the
taxonomy-only routing (``route_new_case``) and the same entry point with no rules at all.

The cases are drawn once (seeded): every Lucheng category, a random grid, channel, local time of
day and a description built from the category's keywords, with a rule's trigger words in a
fifth of them. Each variant routes the same cases, best of ``--repeat`` rounds; the figures are
decisions per second and microseconds per decision, and one ``BENCH_JSON`` line.

    make bench-rules             # 200,000 decisions per variant and round
    python -m bench.rules --quick
"""

from __future__ import annotations

import argparse
import json
import random
import time
from datetime import time as clock
from pathlib import Path

from gridflow_app.folders import jurisdiction_files
from gridflow_common.domain.jurisdiction_files import parse_jurisdiction
from gridflow_common.domain.rules import Facts
from gridflow_common.domain.vocabulary import CHANNELS
from gridflow_routing import domain

RULES = Path(__file__).resolve().parents[1] / "docs" / "examples" / "rules_lucheng.yaml"
TRIGGERS = (
    "大量",
    "爆炸",
    "塌陷",
    "飞线充电",
    "群租",
    "邻居",
    "打架",
    "消防通道",
    "疫情",
    "几十人",
)


def draw_cases(j, count: int, seed: int = 7) -> list[Facts]:
    rng = random.Random(seed)
    grids = [a.code for a in j.areas_at("grid")]
    categories = list(j.categories)
    cases = []
    for _ in range(count):
        category = rng.choice(categories)
        words = list(category.keywords[:2])
        if rng.random() < 0.2:
            words.append(rng.choice(TRIGGERS))
        text = "，".join(["居民反映", *words, "请尽快处理"])
        at = clock(rng.randrange(24), rng.randrange(60))
        cases.append(Facts(category.code, rng.choice(grids), rng.choice(CHANNELS), at, text))
    return cases


def _rate(label: str, decide, cases, rounds: int) -> dict:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for facts in cases:
            decide(facts)
        best = min(best, time.perf_counter() - started)
    per_second = len(cases) / best
    print(f"  {label:<44} {per_second:>12,.0f} /s  {best / len(cases) * 1e6:>7.2f} µs")
    return {"variant": label, "decisions_per_second": round(per_second), "seconds": best}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="20,000 cases, one round")
    args = parser.parse_args(argv)
    if args.quick:
        args.cases, args.repeat = 20_000, 1
    files = jurisdiction_files()
    plain = parse_jurisdiction(files)
    ruled = parse_jurisdiction({**files, "rules.yaml": RULES.read_text(encoding="utf-8")})
    cases = draw_cases(plain, args.cases)
    fired = sum(1 for f in cases if ruled.rules.decide(f).route or ruled.rules.decide(f).limit)
    print(
        f"routing decisions, {len(cases):,} cases, {len(ruled.rules.rules)} rules "
        f"({fired / len(cases):.0%} of cases fire one), best of {args.repeat}:"
    )

    def taxonomy(facts: Facts) -> object:
        return domain.route_new_case(plain, plain.category(facts.category or ""), facts.area_code)

    def no_rules(facts: Facts) -> object:
        return domain.route_by_rules(plain, plain.category(facts.category or ""), facts)

    def with_rules(facts: Facts) -> object:
        return domain.route_by_rules(ruled, ruled.category(facts.category or ""), facts)

    results = [
        _rate("baseline: taxonomy only (route_new_case)", taxonomy, cases, args.repeat),
        _rate("route_by_rules, no rules file", no_rules, cases, args.repeat),
        _rate(f"route_by_rules, {len(ruled.rules.rules)} rules", with_rules, cases, args.repeat),
        _rate("rules alone (RuleSet.decide)", ruled.rules.decide, cases, args.repeat),
    ]
    print("BENCH_JSON " + json.dumps({"bench": "rules", "cases": len(cases), "results": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
