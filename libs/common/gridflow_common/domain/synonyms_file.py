"""``synonyms.csv`` (optional in a jurisdiction's folder): the city's own words for what its
categories' words mean (同义词/方言词), one ``word,standard`` row each: 工钿,工资 (温州话 for
wages), 细儿,小孩. Classification reads the resident's ``word`` as ``standard``
(``resident_text.Normaliser``); a clerk edits the file like the others, and a new jurisdiction
version carries it.
"""

from __future__ import annotations

from typing import Any

FILE = "synonyms.csv"
COLUMNS = ("word", "standard")
# Longer is a sentence, not a word: most likely two columns pasted into one.
MAX_LENGTH = 20


def load_synonyms(loader: Any) -> tuple[tuple[str, str], ...]:
    """The file's pairs in file order; each problem (empty cell, a word twice, a word that is
    its own standard, too long) is added to ``loader`` with its line and column."""
    seen: dict[str, int] = {}
    pairs: list[tuple[str, str]] = []
    for row in loader.table(FILE) or []:
        word = loader.required(FILE, row, "word")
        standard = loader.required(FILE, row, "standard")
        if word is None or standard is None:
            continue
        if len(word) > MAX_LENGTH or len(standard) > MAX_LENGTH:
            column = "word" if len(word) > MAX_LENGTH else "standard"
            loader.add(FILE, row.line, column, f"longer than {MAX_LENGTH} characters")
            continue
        if word == standard:
            loader.add(FILE, row.line, "standard", f"'{word}' is its own standard word")
            continue
        if not loader.unique(FILE, row, "word", word, seen):
            continue
        pairs.append((word, standard))
    return tuple(pairs)
