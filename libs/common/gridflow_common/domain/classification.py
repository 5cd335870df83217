"""Classify a resident's free Chinese text into the city's categories, with a score per
category and the reasons (分类: 得分与理由); or leave it for the command center's triage.

A multinomial naive-Bayes model over character unigrams and bigrams of the normalised text
(``resident_text``) plus the taxonomy's keywords as features of their own:

- **The taxonomy is the prior.** Each category's keywords and name in categories.csv are
  training documents of that category from the start, so a city with no history classifies
  as its keywords say.
- **The city's history teaches it.** Each labelled example (a case's description and the
  category it finally had) adds its n-grams to its category's counts.
- **A keyword used as a place is a landmark.** 路灯下面有人摆摊: a keyword followed by 下面,
  旁边, 门口 ... names where the problem is, not the problem: it is left out of the features
  altogether (neither the keyword nor its characters count).
- **Deterministic and explainable.** The same model and text give the same answer; a
  category's reasons are the stretches of the text whose n-grams weigh most for it against
  the others, and the taxonomy keywords found.
- **Unsure means unclassified.** Below ``min_score`` (the posterior of the best category) or
  within ``min_margin`` of the second, the answer is None: the case goes to triage.

Standard library only; training and classifying take no clock and touch no database.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from gridflow_common.domain.jurisdiction import Category
from gridflow_common.domain.resident_text import LANDMARK_AFTER, NOT_LANDMARK_AFTER, Normaliser

# Below this posterior for the best category, or this close to the second, the text is left
# unclassified (待分拣): a city prefers triage to a case sent to the wrong department. Chosen
# by five-fold cross-validation on the training part of the labelled set only (never the
# held-out part) as the lowest score whose answers are right at least 90% of the time there
# (docs/classification.md has the figures).
DEFAULT_MIN_SCORE = 0.80
DEFAULT_MIN_MARGIN = 0.10
# Laplace smoothing of the n-gram counts.
SMOOTHING = 0.2
# How much a taxonomy keyword weighs as a training document (against one labelled example),
# and how much its presence in a text counts (besides its characters). Cross-validated on the
# training part: 1.5 was right more often than 3, whose keywords outvoted the rest of the text.
PRIOR_WEIGHT = 3.0
KEYWORD_WEIGHT = 1.5
# The posterior's temperature: naive Bayes sums many dependent n-grams and is overconfident;
# dividing the log-likelihoods spreads the scores so a threshold on them means something.
TEMPERATURE = 2.0
# How many categories the answer lists, and how many reasons each.
TOP = 3
REASONS = 4

_KEYWORD = "#"


@dataclass(frozen=True)
class Classification:
    """``category``: the code, or None for triage. ``score``: the best category's posterior
    (0..1) whether or not it was taken. ``scores``: the top categories' posteriors. ``reasons``:
    per listed category, the words of the text that weighed for it."""

    category: str | None
    score: float
    scores: dict[str, float] = field(default_factory=dict)
    reasons: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "category": self.category,
            "score": self.score,
            "scores": dict(self.scores),
            "reasons": {k: list(v) for k, v in self.reasons.items()},
        }


@dataclass(frozen=True)
class _Feature:
    name: str
    weight: float
    start: int
    end: int


def _features(text: str, keywords: Sequence[str]) -> list[_Feature]:
    """The features of normalised ``text``: its unigrams and bigrams (within words, never
    across a space), and each taxonomy keyword it contains. A keyword used as a landmark is
    blanked out first: in 路灯下面有人摆摊 only 有人摆摊 ... speaks of the problem."""
    text = _without_landmarks(text, keywords)
    found: list[_Feature] = []
    for i, ch in enumerate(text):
        if ch == " ":
            continue
        found.append(_Feature(ch, 1.0, i, i + 1))
        if i + 1 < len(text) and text[i + 1] != " ":
            found.append(_Feature(text[i : i + 2], 1.0, i, i + 2))
    for keyword in keywords:
        start = text.find(keyword)
        while start >= 0:
            end = start + len(keyword)
            found.append(_Feature(_KEYWORD + keyword, KEYWORD_WEIGHT, start, end))
            start = text.find(keyword, end)
    return found


def _without_landmarks(text: str, keywords: Sequence[str]) -> str:
    """``text`` with each keyword that is followed by a place word (下面, 旁边 ...) replaced by
    spaces of its length, so offsets (for the reasons) still point into the text."""
    blanked: list[str] | None = None
    for keyword in keywords:
        start = text.find(keyword)
        while start >= 0:
            end = start + len(keyword)
            if text.startswith(LANDMARK_AFTER, end) and not text.startswith(
                NOT_LANDMARK_AFTER, end
            ):
                blanked = blanked if blanked is not None else list(text)
                blanked[start:end] = " " * (end - start)
            start = text.find(keyword, end)
    return text if blanked is None else "".join(blanked)


class Counts:
    """The training counts: per category, the weight of each feature. Examples may be added
    (and, for a relabelled case, removed) one at a time; ``model()`` freezes them."""

    def __init__(self, categories: Iterable[Category], normaliser: Normaliser):
        self.categories = tuple(categories)
        self.codes = tuple(c.code for c in self.categories)
        self.normaliser = normaliser
        self.keywords = tuple(
            sorted(
                {normaliser.normalise(k) for c in self.categories for k in c.keywords} - {""},
                key=len,
                reverse=True,
            )
        )
        self._index = {code: i for i, code in enumerate(self.codes)}
        self.features: dict[str, list[float]] = {}
        self.totals = [0.0] * len(self.codes)
        self.documents = [0.0] * len(self.codes)
        for category in self.categories:
            for word in (*category.keywords, category.name_zh):
                self.add(word, category.code, PRIOR_WEIGHT)

    def add(self, text: str, category: str, weight: float = 1.0) -> bool:
        """Count ``text`` as an example of ``category``; False (nothing counted) when the
        category is not the city's (any more)."""
        i = self._index.get(category)
        if i is None:
            return False
        n = len(self.codes)
        for f in _features(self.normaliser.normalise(text), self.keywords):
            row = self.features.get(f.name)
            if row is None:
                row = self.features[f.name] = [0.0] * n
            row[i] += weight * f.weight
            self.totals[i] += weight * f.weight
            if weight < 0 and all(abs(x) < 1e-9 for x in row):
                # Taken back to nothing: the feature leaves the vocabulary it was never in.
                del self.features[f.name]
        self.documents[i] += weight
        return True

    def remove(self, text: str, category: str, weight: float = 1.0) -> None:
        """Undo ``add(text, category, weight)`` (a case relabelled: its old label goes)."""
        self.add(text, category, -weight)

    def model(
        self, min_score: float = DEFAULT_MIN_SCORE, min_margin: float = DEFAULT_MIN_MARGIN
    ) -> Model:
        n = len(self.codes)
        vocabulary = max(len(self.features), 1)
        denominators = [math.log(max(t, 0.0) + SMOOTHING * vocabulary) for t in self.totals]
        weights: dict[str, tuple[float, ...]] = {}
        for name, row in self.features.items():
            logs = [math.log(max(row[i], 0.0) + SMOOTHING) - denominators[i] for i in range(n)]
            # Centred on the feature's mean over categories: a feature every category shares
            # adds nothing to any score, and what is left is what a reason is made of.
            mean = sum(logs) / n
            centred = tuple(x - mean for x in logs)
            if any(abs(x) > 1e-9 for x in centred):
                weights[name] = centred
        documents = sum(self.documents)
        priors = tuple(math.log((max(d, 0.0) + 1.0) / (documents + n)) for d in self.documents)
        mean_prior = sum(priors) / n if n else 0.0
        return Model(
            codes=self.codes,
            normaliser=self.normaliser,
            keywords=self.keywords,
            weights=weights,
            priors=tuple(p - mean_prior for p in priors),
            min_score=min_score,
            min_margin=min_margin,
        )


@dataclass(frozen=True)
class Model:
    """A trained classifier: ``classify(text)``. Immutable, so a service shares one among its
    workers and swaps it whole when its history has grown."""

    codes: tuple[str, ...]
    normaliser: Normaliser
    keywords: tuple[str, ...]
    weights: dict[str, tuple[float, ...]]
    priors: tuple[float, ...]
    min_score: float = DEFAULT_MIN_SCORE
    min_margin: float = DEFAULT_MIN_MARGIN

    def classify(self, text: str) -> Classification:
        normalised = self.normaliser.normalise(text)
        features = [
            (f, w)
            for f in _features(normalised, self.keywords)
            if (w := self.weights.get(f.name)) is not None
        ]
        if not features or not self.codes:
            return Classification(None, 0.0)
        # Column sums over the features' weight rows: summed in C, not one category at a time.
        rows = [w if f.weight == 1.0 else tuple(f.weight * x for x in w) for f, w in features]
        columns = zip(*rows, strict=True)
        totals = [p + math.fsum(c) for p, c in zip(self.priors, columns, strict=True)]
        top = max(totals)
        exp = [math.exp((t - top) / TEMPERATURE) for t in totals]
        norm = sum(exp)
        posterior = [e / norm for e in exp]
        ranked = sorted(range(len(self.codes)), key=lambda i: (-posterior[i], i))[:TOP]
        best = ranked[0]
        second = posterior[ranked[1]] if len(ranked) > 1 else 0.0
        sure = posterior[best] >= self.min_score and posterior[best] - second >= self.min_margin
        scores = {self.codes[i]: round(posterior[i], 3) for i in ranked}
        reasons = {
            self.codes[i]: _reasons(normalised, features, i)
            + self.normaliser_reasons(text, normalised, features, i)
            for i in ranked
        }
        return Classification(
            self.codes[best] if sure else None,
            round(posterior[best], 3),
            scores,
            {code: words for code, words in reasons.items() if words},
        )

    def normaliser_reasons(self, text: str, normalised: str, features: list, i: int) -> list[str]:
        """The resident's own words the normaliser rewrote, where the rewritten word weighs for
        category ``i`` (工钿→工资 explains a wage case read from 温州话)."""
        shown = []
        for rewrite in self.normaliser.variants_in(text):
            standard = rewrite.split("→", 1)[1]
            weight = sum(
                f.weight * w[i]
                for f, w in features
                if f.name.lstrip(_KEYWORD) in standard and f.end - f.start > 1
            )
            if weight > 0:
                shown.append(rewrite)
        return shown


def _reasons(text: str, features: list[tuple[_Feature, tuple[float, ...]]], i: int) -> list[str]:
    """The stretches of ``text`` that weigh for category ``i``: taxonomy keywords first, then
    runs of overlapping n-grams that weigh for it, heaviest first."""
    keywords: dict[str, float] = {}
    spans: list[tuple[int, int, float]] = []
    for f, w in features:
        if w[i] <= 0:
            continue
        if f.name.startswith(_KEYWORD):
            keywords[f.name[1:]] = keywords.get(f.name[1:], 0.0) + w[i]
        elif f.end - f.start > 1 and w[i] > 1.0:
            spans.append((f.start, f.end, w[i]))
    merged: list[list] = []
    for start, end, weight in sorted(spans):
        if merged and start < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
            merged[-1][2] += weight
        else:
            merged.append([start, end, weight])
    runs: dict[str, float] = {}
    for start, end, weight in merged:
        word = text[start:end]
        if not any(word in k for k in keywords):
            runs[word] = runs.get(word, 0.0) + weight
    ordered = sorted(keywords, key=lambda k: -keywords[k]) + sorted(runs, key=lambda k: -runs[k])
    return ordered[:REASONS]


def train(
    categories: Iterable[Category],
    examples: Iterable[tuple[str, str]] = (),
    synonyms: Iterable[tuple[str, str]] = (),
    *,
    min_score: float = DEFAULT_MIN_SCORE,
    min_margin: float = DEFAULT_MIN_MARGIN,
) -> Model:
    """A model of ``categories`` (their keywords the prior), taught by ``examples``
    (description, final category code); ``synonyms``: the city's word -> standard word."""
    counts = Counts(categories, Normaliser(synonyms))
    for text, category in examples:
        counts.add(text, category)
    return counts.model(min_score, min_margin)
