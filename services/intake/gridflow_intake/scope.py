"""The cases a caller may read, as a WHERE clause on ``intake_cases``: lists, totals, the board
and the assessment select with it, so none of them shows a case ``access.may_read_case`` would
refuse. The decision itself is the domain's (``access.read_scope``); this module only says it in
SQL, the same on PostgreSQL and SQLite.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement

from gridflow_common.domain import access
from gridflow_common.domain.jurisdiction import Jurisdiction
from gridflow_intake.models import cases


class JsonListHas(ColumnElement[bool]):
    """``value`` is one of the strings of the JSON list in ``column``. PostgreSQL: containment
    of the list as jsonb (a GIN index on ``(assisting::jsonb)`` serves it); SQLite: one of
    ``json_each``'s values. Exact on both: no text matching, so no wildcard or quoting to
    escape."""

    inherit_cache = True
    type = sa.Boolean()

    def __init__(self, column: Any, value: str):
        self.column = column
        self.value = value


@compiles(JsonListHas)
def _json_list_has_sqlite(element: JsonListHas, compiler: Any, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    value = compiler.process(sa.bindparam(None, element.value, type_=sa.String), **kw)
    return f"EXISTS (SELECT 1 FROM json_each({column}) WHERE json_each.value = {value})"


@compiles(JsonListHas, "postgresql")
def _json_list_has_postgresql(element: JsonListHas, compiler: Any, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    value = compiler.process(sa.bindparam(None, json.dumps([element.value]), type_=sa.String), **kw)
    return f"(CAST({column} AS JSONB) @> CAST({value} AS JSONB))"


def clause_for(scope: access.ReadScope, table: sa.Table = cases) -> sa.ColumnElement[bool]:
    """``scope`` as a condition on ``table`` (``intake_cases`` or a table with its columns)."""
    if scope.everything:
        return sa.true()
    if scope.areas is not None:
        return table.c.area_code.in_(sorted(scope.areas))
    if scope.party is None:
        return sa.false()
    return sa.or_(
        table.c.holder.in_(sorted(scope.holders | {scope.party})),
        table.c.lead == scope.party,
        JsonListHas(table.c.assisting, scope.party),
    )


def case_scope_clause(principal: access.Principal, j: Jurisdiction) -> sa.ColumnElement[bool]:
    """The cases ``principal`` may read in jurisdiction ``j``, as a WHERE clause on
    ``models.cases``: exactly those ``access.may_read_case`` allows."""
    return clause_for(access.read_scope(principal, j))
