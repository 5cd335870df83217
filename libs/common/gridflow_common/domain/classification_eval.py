"""How well a classifier does on a labelled set (分类准确率): the fixed held-out split, accuracy,
the abstain rate and the confusion pairs. Standard library only; the test and the bench share it.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

# The held-out part: a text whose SHA-256 falls in the first 30 of 100 buckets. Stable across
# runs and machines, and an added example never moves another from one part to the other.
HELD_OUT_PERCENT = 30


def is_held_out(text: str) -> bool:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % 100 < HELD_OUT_PERCENT


@dataclass(frozen=True)
class Evaluation:
    total: int
    correct: int
    abstained: int
    # (expected, given) -> how many; given None = left for triage.
    confusions: dict[tuple[str, str | None], int]

    @property
    def accuracy(self) -> float:
        """Right answers over all texts: an abstention counts as not right."""
        return self.correct / self.total if self.total else 0.0

    @property
    def abstain_rate(self) -> float:
        return self.abstained / self.total if self.total else 0.0

    @property
    def precision(self) -> float:
        """Right answers over the answers given (abstentions left out)."""
        answered = self.total - self.abstained
        return self.correct / answered if answered else 0.0

    def lines(self, name: str) -> list[str]:
        shown = [
            f"{name}: accuracy {self.accuracy:.1%} ({self.correct}/{self.total}), "
            f"abstained {self.abstain_rate:.1%}, right when answering {self.precision:.1%}"
        ]
        for (expected, given), n in sorted(self.confusions.items(), key=lambda x: (-x[1], x[0][0])):
            shown.append(f"  {n} x {expected} -> {given or 'unclassified'}")
        return shown


def evaluate(
    classify: Callable[[str], str | None], examples: Iterable[tuple[str, str]]
) -> Evaluation:
    total = correct = abstained = 0
    confusions: Counter[tuple[str, str | None]] = Counter()
    for text, expected in examples:
        given = classify(text)
        total += 1
        if given == expected:
            correct += 1
            continue
        if given is None:
            abstained += 1
        confusions[(expected, given)] += 1
    return Evaluation(total, correct, abstained, dict(confusions))
