"""What the Celery baselines of the benchmarks share: the worker settings ours runs with
(late acks, prefetch 1, JSON) and a plain AwalChat client (httpx, no shared budget), so each
baseline differs from ours only in its design."""

from __future__ import annotations

from typing import Any, Final

from worker.helpdesks.awalchat import AwalChatClient
from worker.helpdesks.http import new_http_client
from worker.settings import Settings

CELERY_SETTINGS: Final[dict[str, Any]] = {
    "task_acks_late": True,
    "worker_prefetch_multiplier": 1,
    "task_serializer": "json",
    "accept_content": ["json"],
    "task_ignore_result": True,
    "broker_connection_retry_on_startup": True,
    "worker_hijack_root_logger": False,
}


def plain_awalchat_client(settings: Settings) -> AwalChatClient:
    """The AwalChat client ours uses, on a plain httpx client (no shared rate budget)."""
    assert settings.awalchat_hmac_secret
    assert settings.awalchat_client_id
    assert settings.awalchat_domain
    return AwalChatClient(
        new_http_client(timeout_seconds=settings.http_timeout_seconds),
        base_url=settings.awalchat_base_url,
        hmac_secret=settings.awalchat_hmac_secret.get_secret_value(),
        client_id=settings.awalchat_client_id,
        domain=settings.awalchat_domain,
    )
