"""The data plane (gateway/runtime) imports no ORM, no app models and no Celery."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

RUNTIME = Path(__file__).resolve().parents[1] / "runtime"
FORBIDDEN_PREFIXES = ("django", "celery", "rest_framework", "channels")
APPS = ("tenants", "billing", "analytics", "abuse")


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


@pytest.mark.parametrize("module", sorted(RUNTIME.glob("*.py")), ids=lambda p: p.name)
def test_runtime_module_imports_stay_inside_the_data_plane(module: Path) -> None:
    for name in _imports(module):
        assert not name.startswith(FORBIDDEN_PREFIXES), f"{module.name} imports {name}"
        assert name.split(".")[0] not in APPS, f"{module.name} imports {name}"
        if name.startswith("gateway."):
            assert name.startswith("gateway.runtime"), f"{module.name} imports {name}"
