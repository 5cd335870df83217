"""Guess a case's category from a resident's free Chinese text (12345 calls, WeChat messages).

Keyword matching, not a model: each city writes its own keywords in categories.csv, a clerk can
see why a case was classified as it was, and the same text always gives the same answer.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from gridflow_common.domain.jurisdiction import Category


def _normalise(text: str) -> str:
    # NFKC folds full-width letters and digits (Ｗｉｆｉ, １２３) that Chinese input methods
    # produce, so a keyword typed half-width still matches; casefold does the same for case.
    return unicodedata.normalize("NFKC", text).casefold()


def classify(text: str, categories: Iterable[Category]) -> str | None:
    """The code of the category whose keywords best match ``text``, or None if none match.

    Best = most distinct keywords found, then the longest total length of those keywords
    (a long specific phrase says more than a short common one); remaining ties go to the
    category listed first, so the city controls precedence by ordering its file.
    """
    haystack = _normalise(text)
    if not haystack.strip():
        return None
    best_code: str | None = None
    best_score = (0, 0)
    for category in categories:
        matched = {k for k in (_normalise(k) for k in category.keywords) if k and k in haystack}
        score = (len(matched), sum(len(k) for k in matched))
        # Strictly greater: an equal score later in the file never displaces an earlier one.
        if score > best_score:
            best_code, best_score = category.code, score
    return best_code
