"""The Chinese messages notify sends (通知模板): Jinja2 templates, one per kind.

The templates Gridflow ships are in ``gridflow_notify/templates/<kind>.j2``. A city words a
kind its own way in the jurisdiction's ``notify_templates.csv`` (kind, template), or an
operator in a folder named by ``GRIDFLOW_NOTIFY_TEMPLATES`` (``<kind>.j2`` files); the
jurisdiction's wins, then the folder's, then the shipped one.

Every template renders with ``StrictUndefined``: a variable a template names that the context
does not give is an error, never an empty gap. ``problems`` renders every template against a
realistic context at import of the city's data (``jurisdictions.check_templates``), so a
template that cannot render is refused with its file and line then, not at 3 a.m.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from gridflow_common.domain import notify_plan as np

TEMPLATES_ENV = "GRIDFLOW_NOTIFY_TEMPLATES"

SUBJECTS: dict[str, str] = {
    np.REGISTERED: "新立案件",
    np.DISPATCHED: "案件派遣",
    np.WARNING_YELLOW: "黄色预警",
    np.WARNING_ORANGE: "橙色预警",
    np.WARNING_RED: "红色预警",
    np.SUPERVISION: "督办通知",
    np.ESCALATION: "升级督办",
    np.RETURNED: "案件退回",
    np.AWAITING_ORDER: "待下达指令",
    np.ASSISTING: "协办通知",
    np.UNDELIVERABLE: "案件无法送达",
    np.HOTSPOT: "热点预警",
    "resident_registered": "您反映的问题已立案",
    "resident_dispatched": "您反映的问题正在办理",
    "resident_resolved": "您反映的问题已办结",
    "resident_evaluation": "请评价办理结果",
}

# What each kind's context carries, with realistic values: the import check renders every
# template with these, and the tests assert no English word reaches a reader.
_COMMON = {
    "case_id": "GF-20261126-ABCDEFGHJK",
    "category": "暴露垃圾",
    "place": "五马街道戍浦社区第一网格",
    "unit": "五马街道城管中队",
    "person": "郝琳雪",
}
SAMPLE_CONTEXT: dict[str, dict[str, Any]] = {
    np.REGISTERED: {**_COMMON},
    np.DISPATCHED: {**_COMMON, "reason": "", "due": "11月27日 17:30"},
    np.WARNING_YELLOW: {**_COMMON, "due": "11月27日 17:30"},
    np.WARNING_ORANGE: {**_COMMON, "due": "11月27日 17:30"},
    np.WARNING_RED: {**_COMMON, "due": "11月27日 17:30"},
    np.SUPERVISION: {**_COMMON, "note": "请今日办结"},
    np.ESCALATION: {**_COMMON},
    np.RETURNED: {**_COMMON, "note": "不属于本单位职责"},
    np.AWAITING_ORDER: {**_COMMON, "reason": "退回"},
    np.ASSISTING: {**_COMMON, "lead": "鹿城区城市管理局"},
    np.UNDELIVERABLE: {**_COMMON, "role": "主办", "attempts": 11},
    np.HOTSPOT: {**_COMMON, "count": 5, "window_minutes": 60},
    "resident_registered": {
        **_COMMON,
        "progress_url": "https://gridflow.example.cn/api/v1/progress/gfr_" + "A" * 43,
    },
    "resident_dispatched": {
        **_COMMON,
        "due": "11月27日 17:30",
        "progress_url": "https://gridflow.example.cn/api/v1/progress/gfr_" + "A" * 43,
    },
    "resident_resolved": {**_COMMON},
    "resident_evaluation": {
        **_COMMON,
        "progress_url": "https://gridflow.example.cn/api/v1/progress/gfr_" + "A" * 43,
    },
}

_ENV = jinja2.Environment(
    undefined=jinja2.StrictUndefined,
    autoescape=False,
    keep_trailing_newline=False,
    trim_blocks=True,
    lstrip_blocks=True,
)
_compiled: dict[tuple[str, str], jinja2.Template] = {}


def shipped_text(kind: str) -> str:
    folder = resources.files("gridflow_notify") / "templates"
    return (folder / f"{kind}.j2").read_text(encoding="utf-8")


def _folder_text(kind: str) -> str | None:
    folder = os.environ.get(TEMPLATES_ENV)
    if not folder:
        return None
    path = Path(folder) / f"{kind}.j2"
    return path.read_text(encoding="utf-8") if path.is_file() else None


def source_of(kind: str, plan: np.NotifyPlan | None = None) -> tuple[str, str]:
    """The template text of ``kind`` and where it comes from (for error messages)."""
    if plan is not None and kind in plan.templates:
        return plan.templates[kind], "notify_templates.csv"
    text = _folder_text(kind)
    if text is not None:
        return text, f"{os.environ[TEMPLATES_ENV]}/{kind}.j2"
    return shipped_text(kind), f"gridflow_notify/templates/{kind}.j2"


def _template(text: str) -> jinja2.Template:
    key = ("", text)
    found = _compiled.get(key)
    if found is None:
        found = _compiled[key] = _ENV.from_string(text)
    return found


def render(
    kind: str, context: Mapping[str, Any], plan: np.NotifyPlan | None = None
) -> tuple[str, str]:
    """(subject, text) of a ``kind`` message; ``jinja2.TemplateError`` when it cannot render
    (the import check makes that a mistake found at import)."""
    text, _ = source_of(kind, plan)
    body = _template(text).render(**context).strip()
    return SUBJECTS.get(kind, "网格化管理通知"), body


def problems(plan: np.NotifyPlan | None = None) -> list[tuple[str, int, str, str]]:
    """Every template that cannot render its kind's realistic context, as (file, line, kind,
    why): a syntax error, a variable the context does not give, a filter that does not exist."""
    found = []
    for kind in np.KINDS:
        text, where = source_of(kind, plan)
        line = plan.template_lines.get(kind, 0) if plan is not None else 0
        try:
            _ENV.from_string(text).render(**SAMPLE_CONTEXT[kind])
        except jinja2.TemplateSyntaxError as exc:
            found.append(
                (
                    where,
                    line,
                    kind,
                    f"template syntax error on its line {exc.lineno}: {exc.message}",
                )
            )
        except jinja2.TemplateError as exc:
            found.append((where, line, kind, f"template cannot render: {exc}"))
    return found
