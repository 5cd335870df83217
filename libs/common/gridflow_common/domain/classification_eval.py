"""How well a classifier does on a labelled set (分类准确率): the fixed held-out split, accuracy,
the abstain rate, precision when answering and the confusion pairs; cross-validation on the
training part, where the abstention threshold is chosen. Standard library only; the test and
the bench share it.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from gridflow_common.domain import classification
from gridflow_common.domain.jurisdiction import Category

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
    return tally((expected, classify(text)) for text, expected in examples)


def tally(answers: Iterable[tuple[str, str | None]]) -> Evaluation:
    """(expected, given) pairs counted; given None is an abstention."""
    total = correct = abstained = 0
    confusions: Counter[tuple[str, str | None]] = Counter()
    for expected, given in answers:
        total += 1
        if given == expected:
            correct += 1
            continue
        if given is None:
            abstained += 1
        confusions[(expected, given)] += 1
    return Evaluation(total, correct, abstained, dict(confusions))


# Cross-validation on the training part: the only place a setting (the abstention threshold,
# a weight) is chosen. A text's fold is fixed by its hash, like the held-out split.
FOLDS = 5
# How often an answer given should be right: a wrong category sends the case to the wrong
# department, which a city likes less than a case left for its command center's triage.
TARGET_PRECISION = 0.90


def fold_of(text: str, folds: int = FOLDS) -> int:
    digest = hashlib.sha256(b"fold:" + text.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % folds


@dataclass(frozen=True)
class Scored:
    """One cross-validated answer: the expected category, the best one, its score and its
    lead over the second."""

    expected: str
    best: str | None
    score: float
    margin: float


def cross_validate(
    classify: Callable[[list[tuple[str, str]]], Callable[[str], tuple[str | None, float, float]]],
    examples: list[tuple[str, str]],
    folds: int = FOLDS,
) -> list[Scored]:
    """Each example answered by a model trained on the other folds. ``classify(training)``
    returns a function of a text giving (best category, its score, its lead over the second),
    without abstaining, so that thresholds can be tried afterwards."""
    answers: list[Scored] = []
    for fold in range(folds):
        training = [e for e in examples if fold_of(e[0], folds) != fold]
        answer = classify(training)
        for text, expected in examples:
            if fold_of(text, folds) == fold:
                answers.append(Scored(expected, *answer(text)))
    return answers


def cross_validate_model(
    categories: Iterable[Category],
    synonyms: Iterable[tuple[str, str]],
    examples: list[tuple[str, str]],
    folds: int = FOLDS,
) -> list[Scored]:
    """``cross_validate`` of the classification model as ``classification.train`` builds it."""
    categories, synonyms = tuple(categories), tuple(synonyms)

    def trained(
        training: list[tuple[str, str]],
    ) -> Callable[[str], tuple[str | None, float, float]]:
        model = classification.train(categories, training, synonyms, min_score=0.0, min_margin=0.0)

        def answer(text: str) -> tuple[str | None, float, float]:
            result = model.classify(text)
            ranked = sorted(result.scores.values(), reverse=True) + [0.0, 0.0]
            return result.category, result.score, ranked[0] - ranked[1]

        return answer

    return cross_validate(trained, examples, folds)


def choose_min_score(
    answers: list[Scored], min_margin: float, target_precision: float = TARGET_PRECISION
) -> float:
    """The lowest score threshold (in steps of 0.05) at which the cross-validated answers given
    are right at least ``target_precision`` of the time: as few cases left for triage as that
    precision allows."""
    for step in range(0, 20):
        min_score = round(step * 0.05, 2)
        if at_threshold(answers, min_score, min_margin).precision >= target_precision:
            return min_score
    return 1.0


def at_threshold(answers: Iterable[Scored], min_score: float, min_margin: float) -> Evaluation:
    """What the cross-validated answers would score with these abstention thresholds."""
    return tally(
        (a.expected, a.best if a.score >= min_score and a.margin >= min_margin else None)
        for a in answers
    )
