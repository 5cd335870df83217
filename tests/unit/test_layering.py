"""The arrows run one way: services and the application import gridflow_common, never the other
way round. Read from the source (ast), so an import inside a function counts as much as one at
the top of a module."""

from __future__ import annotations

import ast
from pathlib import Path

import gridflow_common

COMMON = Path(gridflow_common.__file__).resolve().parent
# Everything above the shared library: the five services and the application.
ABOVE = (
    "gridflow_app",
    "gridflow_intake",
    "gridflow_routing",
    "gridflow_departments",
    "gridflow_sla",
    "gridflow_notify",
)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def upward_imports(root: Path) -> list[str]:
    return [
        f"{path.relative_to(root.parent)}:{line} imports {module}"
        for path in sorted(root.rglob("*.py"))
        for line, module in imported_modules(path)
        if module.split(".")[0] in ABOVE
    ]


def test_the_shared_library_imports_no_service_and_not_the_application():
    modules = sorted(COMMON.rglob("*.py"))
    assert len(modules) > 10, f"found only {len(modules)} modules under {COMMON}"
    assert upward_imports(COMMON) == []


def test_the_check_sees_imports_anywhere_in_a_module(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "ok.py").write_text("import json\nfrom gridflow_common import contracts\n")
    (package / "bad.py").write_text(
        "def later():\n    from gridflow_intake.api import IntakeApi\n    import gridflow_app.cli\n"
    )
    assert upward_imports(package) == [
        "pkg/bad.py:2 imports gridflow_intake.api",
        "pkg/bad.py:3 imports gridflow_app.cli",
    ]
