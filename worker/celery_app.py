"""`celery -A worker.celery_app worker`: the app, built from the environment when Celery asks
for it (not when this module is imported). `ticket-worker work` does the same."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name not in ("app", "celery"):
        raise AttributeError(name)
    from worker.processing.celery_config import create_celery
    from worker.settings import Settings

    app = create_celery(Settings())
    globals().update(app=app, celery=app)
    return app
