"""A department's own words for what it did with a case, taken as Gridflow's statuses with the
city's table (adapters.csv, column status_map). Standard library only.

A department system says "已签收", "ACK" or "closed" where Gridflow says ``accepted`` or
``resolved``. The city's data maps its words: the row of the sender's unit when it has one,
else the row of its department. A word already in Gridflow's vocabulary
(``vocabulary.UPDATE_STATUSES``) is itself. Any other word is *unknown*, and unknown is never
guessed: a word that looks like "resolved" may mean "resolved upstream, not by us", and a wrong
guess closes a loop nobody closed. The caller keeps an unknown word (the case's timeline), logs
it with its sender and answers that it was not recognised; the case's status does not change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gridflow_common.domain import vocabulary as v
from gridflow_common.domain.jurisdiction import AdapterConfig, Jurisdiction

# The timeline entry of a word nobody could map (kind), kept with the word and its note.
ENTRY_STATUS_UNRECOGNISED = "status_unrecognised"
# The timeline entry of a polling adapter's status that the case could not take (a refusal
# recorded, not raised: the fact that the department said it stays on the case).
ENTRY_STATUS_REFUSED = "status_refused"


@dataclass(frozen=True)
class TakenWord:
    """What a department's word is taken as: ``status`` (None when the word is unknown), the
    word as it was said, and where the meaning came from (``vocabulary``, ``status_map of
    <code>`` or None)."""

    word: str
    status: str | None
    source: str | None

    @property
    def recognised(self) -> bool:
        return self.status is not None


def adapter_config(j: Jurisdiction, code: str) -> AdapterConfig | None:
    """The adapters.csv row that speaks for ``code``. A department's is its own row (None when
    it has none: a department is not a unit, and the default a unit falls back on is not a
    row of its). A unit's is ``Jurisdiction.adapter_for``: its own row, else its department's,
    else the default adapter's, which maps no words and names no secret."""
    if j.department(code) is not None:
        return next((row for row in j.adapters if row.code == code), None)
    return j.adapter_for(code)


def status_map_for(j: Jurisdiction, code: str) -> tuple[Mapping[str, str], str | None]:
    """The word table that applies to ``code`` and whose row it is (None: no table)."""
    config = adapter_config(j, code)
    if config is None or not config.status_map:
        return {}, None
    return config.status_map, config.code


def take_word(word: str, status_map: Mapping[str, str], map_owner: str | None = None) -> TakenWord:
    """``word`` as Gridflow's status: the map's meaning, else the word itself when it is one of
    Gridflow's update statuses, else unknown. The map is read as the city wrote it; a map entry
    pointing at something that is not an update status (the import should have refused it) is
    not followed either: it, too, is unknown rather than guessed."""
    said = word.strip()
    if said in status_map:
        meaning = status_map[said]
        if meaning in v.UPDATE_STATUSES:
            return TakenWord(word, meaning, f"status_map of {map_owner}" if map_owner else None)
        return TakenWord(word, None, None)
    if said in v.UPDATE_STATUSES:
        return TakenWord(word, said, "vocabulary")
    return TakenWord(word, None, None)


def take_department_word(j: Jurisdiction, unit: str, word: str) -> TakenWord:
    """``word`` said by ``unit`` (or a department), with the city's table for it."""
    status_map, owner = status_map_for(j, unit)
    return take_word(word, status_map, owner)
