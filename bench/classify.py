"""Classification at intake: classifications per second of the model beside the keyword
classifier it replaces (same run, same texts), the cost of training it on a grown history,
accuracy, abstention and precision when answering on the held-out part of the labelled set,
and the cross-validated threshold table of the training part the abstention is chosen from.

    make bench-classify            # about 10 s
    python -m bench.classify --quick
    python -m bench.classify --during-retrain   # report latency while it retrains
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

from gridflow_app.folders import LUCHENG
from gridflow_common.domain import classification as cl
from gridflow_common.domain import classification_eval as ev
from gridflow_common.domain.classify import classify as keyword_classify
from gridflow_common.domain.jurisdiction_files import load_folder

LABELLED = Path(__file__).resolve().parents[1] / "tests/fixtures/classification/labelled.csv"


def _rate(classify, texts: list[str], seconds: float) -> float:
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for text in texts:
            classify(text)
        done += len(texts)
    return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short run (about 2 s)")
    parser.add_argument(
        "--during-retrain",
        action="store_true",
        help="report latency while the model is trained again (bench.classify_retrain)",
    )
    args, rest = parser.parse_known_args()
    if args.during_retrain:
        # Its own process: it must monkey-patch eventlet before anything else is imported.
        quick = ["--quick"] if args.quick else []
        os.execv(sys.executable, [sys.executable, "-m", "bench.classify_retrain", *quick, *rest])
    seconds = 0.5 if args.quick else 3.0
    j = load_folder(LUCHENG)
    with LABELLED.open(encoding="utf-8", newline="") as f:
        labelled = list(csv.DictReader(f))
    rows = [(r["text"], r["category"]) for r in labelled]
    training = [r for r in rows if not ev.is_held_out(r[0])]
    held = [r for r in rows if ev.is_held_out(r[0])]
    texts = [t for t, _ in rows]

    started = time.perf_counter()
    model = cl.train(j.categories, training, j.synonyms)
    trained_in = time.perf_counter() - started
    # A grown history: the training part 60 times over (about 13,000 labels), as a replica
    # retrains it after another replica's label.
    started = time.perf_counter()
    cl.train(j.categories, training * 60, j.synonyms)
    grown_in = time.perf_counter() - started

    baseline = _rate(lambda t: keyword_classify(t, j.categories), texts, seconds)
    rate = _rate(model.classify, texts, seconds)
    print(f"texts: {len(texts)} (training part {len(training)}, held-out {len(held)})")
    print(f"keyword classifier (baseline): {baseline:,.0f} classifications/s")
    print(
        f"model:                         {rate:,.0f} classifications/s ({1000 / rate:.3f} ms each)"
    )
    print(
        f"training: {trained_in * 1000:.0f} ms on {len(training)} labels, "
        f"{grown_in * 1000:.0f} ms on {len(training) * 60:,} labels"
    )
    for name, classify in (
        ("keyword baseline", lambda t: keyword_classify(t, j.categories)),
        ("model", lambda t: model.classify(t).category),
    ):
        print(ev.evaluate(classify, held).lines(f"held-out {name}")[0])
    for batch in sorted({r["batch"] for r in labelled}):
        part = [
            (r["text"], r["category"])
            for r in labelled
            if r["batch"] == batch and ev.is_held_out(r["text"])
        ]
        shown = ev.evaluate(lambda t: model.classify(t).category, part)
        print(shown.lines(f"  of which batch {batch} ({len(part)})")[0])
    print("cross-validated on the training part (5 folds), by abstention threshold:")
    answers = ev.cross_validate_model(j.categories, j.synonyms, training)
    for step in range(8, 20):
        min_score = round(step * 0.05, 2)
        at = ev.at_threshold(answers, min_score, cl.DEFAULT_MIN_MARGIN)
        mark = "  <- chosen" if min_score == cl.DEFAULT_MIN_SCORE else ""
        print(
            f"  score >= {min_score:.2f}: accuracy {at.accuracy:.1%}, abstained "
            f"{at.abstain_rate:.1%}, right when answering {at.precision:.1%}{mark}"
        )


if __name__ == "__main__":
    main()
