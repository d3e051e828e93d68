"""The engine is pure: importing and running it loads no web, queue, Redis or HTTP library."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

FORBIDDEN = ("starlette", "celery", "redis", "httpx", "kombu", "uvicorn")
ENGINE = Path(__file__).resolve().parents[2] / "worker" / "engine"

RUN_THE_ENGINE = """
import sys
from datetime import datetime, timezone
{preload}
before = set(sys.modules)
from pathlib import Path
from worker.engine import evaluate, load_ruleset
from worker.engine.model import ConversationState, Event
rules = load_ruleset(Path({rules!r}))
event = Event("message.received", {{"event": "message.received", "data": {{"body": "help"}}}})
evaluate(rules, event, ConversationState(), now=datetime.now(timezone.utc))
new = {{name.split(".")[0] for name in set(sys.modules) - before}}
print(" ".join(sorted(new & set({forbidden!r}))))
"""


def forbidden_modules_loaded(*, preload: str = "") -> list[str]:
    """Forbidden top-level modules that importing and running the engine adds."""
    rules = str(ENGINE.parents[1] / "rules")
    code = RUN_THE_ENGINE.format(preload=preload, rules=rules, forbidden=FORBIDDEN)
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ENGINE.parents[1],
    )
    return result.stdout.split()


def test_no_engine_module_imports_an_io_library() -> None:
    for path in sorted(ENGINE.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not [n for n in names if n.split(".")[0] in FORBIDDEN], path.name


def test_running_the_engine_loads_no_io_library_of_its_own() -> None:
    # worker.errors is shared with the helpdesk clients; see the test below.
    assert forbidden_modules_loaded(preload="import worker.errors") == []


def test_importing_the_engine_loads_no_io_library_at_all() -> None:
    assert forbidden_modules_loaded() == []
