"""The package's arrows (docs/design.md): from the edges down to the pure engine, none back.

Each unit may import only the units listed for it (every import statement counts, inside
functions too). A new arrow is a design change: add it here and to the picture in
docs/design.md, or move the code.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import worker

PACKAGE = Path(worker.__file__).parent

# unit -> the units it may import (its own always allowed)
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "logs": set(),
    "engine": {"errors"},
    "helpdesks": {"errors"},
    "storage": {"engine", "errors"},
    "delivery": {"storage", "engine", "helpdesks", "errors"},
    "settings": {"engine", "storage", "delivery", "errors"},
    "metrics": {"engine"},
    "live_rules": {"engine", "storage", "errors"},
    "startup": {"engine", "live_rules", "settings", "storage", "errors"},
    "receiver": {"engine", "storage", "settings", "metrics", "logs", "errors"},
    "processing": {
        "engine",
        "storage",
        "delivery",
        "helpdesks",
        "live_rules",
        "startup",
        "settings",
        "metrics",
        "errors",
    },
    "celery_app": {"processing", "settings"},
    "console": {"engine", "storage", "delivery", "processing", "settings", "errors"},
    "ops": {
        "engine",
        "storage",
        "delivery",
        "helpdesks",
        "live_rules",
        "startup",
        "settings",
        "metrics",
        "logs",
        "receiver",
        "processing",
        "console",
        "errors",
    },
}


def unit_of(path: Path) -> str:
    part = path.relative_to(PACKAGE).parts[0]
    return part.removesuffix(".py")


def imported_units(path: Path) -> set[str]:
    """The units of `worker` a module imports."""
    units: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "worker":
                names = [f"worker.{alias.name}" for alias in node.names]
        units.update(name.split(".")[1] for name in names if name.startswith("worker."))
    return units


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if unit_of(p) != "__init__")


def test_every_unit_is_placed() -> None:
    assert {unit_of(p) for p in MODULES} == set(ALLOWED)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_follow_the_arrows(path: Path) -> None:
    unit = unit_of(path)
    assert imported_units(path) - {unit} <= ALLOWED[unit]


def test_the_check_sees_an_arrow_back(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "def f():\n    from worker.ops.cli import main\nfrom worker import receiver\n"
    )
    assert imported_units(module) == {"ops", "receiver"}
