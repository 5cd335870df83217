"""What an address lookup costs (domain/addresses.py), beside a naive scan of the same list in
the same run: Lucheng's shipped list, and a city-sized one (every grid of Lucheng given many
buildings, compounds and road sections). Pure CPU; no database, no broker.

    .venv/bin/python -m bench.addresses [--quick]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from gridflow_app.folders import LUCHENG, jurisdiction_files
from gridflow_common.domain.addresses import AddressEntry, AddressIndex, normalise
from gridflow_common.domain.jurisdiction_files import load_folder, parse_jurisdiction

QUERIES = (
    "浙江省温州市鹿城区锦绣花园三栋502室楼道里堆满杂物",
    "人民西路十二号门口的井盖不见了",
    "五马街道青园社区第一网格菜场旁边有人占道经营",
    "火星路1号",
)


def _per_call(fn: Callable[[str], object], rounds: int) -> float:
    start = time.perf_counter()
    for i in range(rounds):
        fn(QUERIES[i % len(QUERIES)])
    return (time.perf_counter() - start) / rounds * 1e6


def _naive(entries: tuple[AddressEntry, ...]) -> Callable[[str], object]:
    """The baseline: every entry's name looked for in the text, one after another."""
    names = [(normalise(e.name), e) for e in entries]

    def lookup(text: str) -> object:
        t = normalise(text)
        return [e for n, e in names if n in t]

    return lookup


def _city_sized(per_grid: int) -> tuple[AddressEntry, ...]:
    j = load_folder(LUCHENG)
    entries = []
    for g, grid in enumerate(j.areas_at("grid")):
        for k in range(per_grid):
            entries.append(AddressEntry("building", f"楼{g}号区{k}号楼幢", grid.code, k + 2))
    return tuple(entries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds, a smaller city")
    args = parser.parse_args()
    rounds = 2_000 if args.quick else 20_000
    per_grid = 50 if args.quick else 400

    start = time.perf_counter()
    j = parse_jurisdiction(jurisdiction_files(LUCHENG))
    parse_ms = (time.perf_counter() - start) * 1e3
    print(
        f"Lucheng ({len(j.addresses)} entries, {len(j.areas)} areas), parsed in {parse_ms:.1f} ms"
    )
    print(f"  indexed lookup   {_per_call(j.resolve_address, rounds):8.1f} us/address")
    print(f"  naive scan       {_per_call(_naive(j.addresses), rounds):8.1f} us/address")

    big = _city_sized(per_grid)
    start = time.perf_counter()
    index = AddressIndex(big, j.areas)
    build_ms = (time.perf_counter() - start) * 1e3
    print(f"city-sized ({len(big)} entries), index built in {build_ms:.1f} ms")
    print(f"  indexed lookup   {_per_call(index.resolve, rounds):8.1f} us/address")
    print(f"  naive scan       {_per_call(_naive(big), max(rounds // 20, 50)):8.1f} us/address")


if __name__ == "__main__":
    main()
