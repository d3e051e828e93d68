"""The package's public surface and its import boundaries."""

from __future__ import annotations

import ast
import pathlib

import worker.delivery

PACKAGE = pathlib.Path(worker.delivery.__file__).parent


def test_every_public_name_is_exported() -> None:
    assert all(hasattr(worker.delivery, name) for name in worker.delivery.__all__)


# The Redis building blocks; the HTTP edge (gate.py) is the one module allowed httpx.
CORE = ["__init__", "dlq", "parking", "ratelimit", "retry"]


def test_the_building_blocks_import_neither_celery_nor_httpx() -> None:
    for path in (PACKAGE / f"{name}.py" for name in CORE):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                assert name.split(".")[0] not in {"celery", "httpx", "kombu"}, (path, name)
