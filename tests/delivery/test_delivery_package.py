"""The delivery package's import boundary: Redis building blocks, no Celery, no HTTP.

Only `gate.py` (the rate budget at the HTTP edge) may import httpx; no module of the package
imports celery or kombu, so the blocks stay usable from any worker model.
"""

from __future__ import annotations

import ast
import pathlib

import worker.delivery

PACKAGE = pathlib.Path(worker.delivery.__file__).parent
FORBIDDEN = {"celery", "httpx", "kombu"}
HTTP_EDGE = "gate.py"


def imported_packages(source: str) -> set[str]:
    """The top-level packages a module's source imports, wherever the import statement is."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_the_check_sees_every_form_of_import() -> None:
    source = "import httpx.x\nfrom celery import Celery\ndef f():\n    import kombu\n"
    assert imported_packages(source) == FORBIDDEN


def test_the_building_blocks_import_neither_celery_nor_httpx() -> None:
    modules = sorted(PACKAGE.glob("*.py"))
    assert len(modules) >= 8  # the glob found the package
    for path in modules:
        allowed = {"httpx"} if path.name == HTTP_EDGE else set()
        assert not (imported_packages(path.read_text()) & (FORBIDDEN - allowed)), path.name
