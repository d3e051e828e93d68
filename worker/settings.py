"""Settings: the only reader of the environment (and of a `.env` file).

Names are the contract of `shared/specs/interface.md`; keep them stable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from worker.delivery.ratelimit import parse_rate
from worker.engine.timing import parse_duration
from worker.errors import ConfigError
from worker.storage import keys
from worker.storage.clients import RedisTarget

DEFAULT_AWALCHAT_BASE_URL = "https://api.awalchat.com/api/developer"


class Settings(BaseSettings):
    """Every setting of the service; build one per entry point and pass it down."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    redis_url: str | None = None
    redis_sentinel_master: str | None = None
    rules_path: Path = Path("rules")

    awalchat_base_url: str = DEFAULT_AWALCHAT_BASE_URL
    awalchat_hmac_secret: SecretStr | None = None
    awalchat_client_id: str | None = None
    awalchat_domain: str | None = None
    awalchat_phone_number_id: str | None = None
    awalchat_webhook_secrets: Annotated[tuple[SecretStr, ...], NoDecode] = ()

    helpwave_base_url: str | None = None
    helpwave_api_key: SecretStr | None = None

    dry_run: bool = False
    admin_token: SecretStr | None = None
    viewer_token: SecretStr | None = None  # the console's read-only password

    # Bounded storage (interface.md): durations are written `30d`, `12h`, `90m` or seconds.
    state_retention: Annotated[int, NoDecode] = keys.DEFAULT_STATE_RETENTION
    dlq_max: int = Field(default=keys.DEFAULT_DLQ_MAX, ge=1)
    dlq_retention: Annotated[int, NoDecode] = keys.DEFAULT_DLQ_RETENTION

    # Tunables beyond the interface table; defaults suit production.
    http_timeout_seconds: float = Field(default=10.0, gt=0)
    worker_concurrency: int = Field(default=2, ge=1)
    worker_metrics_port: int = Field(default=9108, ge=0, le=65535)  # 0: not served
    # How long a conversation's lock outlives a worker that died holding it; a live worker
    # renews it while it works (worker.delivery.lease).
    conversation_lock_seconds: float = Field(default=60.0, ge=5)
    awalchat_rate: str | None = None  # e.g. "60/10s"; learnt from headers when unset
    helpwave_rate: str | None = "10/1s"
    # How long the receiver waits for a request's head, then for its body (408): the
    # contract's 10 s (interface.md, "Hostile cost"). Not for operators: tests shorten it.
    receiver_read_timeout_seconds: float = Field(default=10.0, gt=0)

    @field_validator("awalchat_webhook_secrets", mode="before")
    @classmethod
    def _split_secrets(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("state_retention", "dlq_retention", mode="before")
    @classmethod
    def _parse_retention(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.isascii() and text.isdigit():
                return int(text)
            duration = parse_duration(text)
            if duration is None:
                raise ValueError("expected a duration such as '30d', '12h' or '90m'")
            return int(duration.total_seconds())
        return value

    @field_validator("state_retention", "dlq_retention", mode="after")
    @classmethod
    def _check_retention(cls, value: int) -> int:
        if value < 3600:
            raise ValueError("must be at least 1h")
        return value

    @field_validator("awalchat_rate", "helpwave_rate", mode="after")
    @classmethod
    def _check_rate(cls, value: str | None) -> str | None:
        if value:
            try:
                parse_rate(value)
            except ValueError:
                raise ValueError("expected a rate such as '60/10s' or '100/1m'") from None
        return value

    @field_validator("awalchat_base_url", "helpwave_base_url", mode="after")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    def require_redis_url(self) -> str:
        """Return `REDIS_URL` or raise a ConfigError naming it."""
        if not self.redis_url:
            raise ConfigError("REDIS_URL is not set (ticket-worker up starts an embedded Redis)")
        return self.redis_url

    def redis_target(self) -> RedisTarget:
        """Where Redis is (`REDIS_URL`, with `REDIS_SENTINEL_MASTER` for Sentinel); raise a
        ConfigError naming the setting that is missing."""
        return RedisTarget(self.require_redis_url(), self.redis_sentinel_master)

    def missing_credentials(self, *, awalchat: bool, helpwave: bool) -> list[str]:
        """Names of the unset settings that live calls to the given helpdesks need."""
        wanted: list[tuple[str, object]] = []
        if awalchat:
            wanted += [
                ("AWALCHAT_HMAC_SECRET", self.awalchat_hmac_secret),
                ("AWALCHAT_CLIENT_ID", self.awalchat_client_id),
                ("AWALCHAT_DOMAIN", self.awalchat_domain),
                ("AWALCHAT_PHONE_NUMBER_ID", self.awalchat_phone_number_id),
            ]
        if helpwave:
            wanted += [
                ("HELPWAVE_BASE_URL", self.helpwave_base_url),
                ("HELPWAVE_API_KEY", self.helpwave_api_key),
            ]
        return [name for name, value in wanted if not value]

    def has_any_credentials(self) -> bool:
        """True when any helpdesk credential is set (`up` then runs live)."""
        return any(
            (
                self.awalchat_hmac_secret,
                self.awalchat_client_id,
                self.awalchat_domain,
                self.helpwave_api_key,
                self.helpwave_base_url,
            )
        )
