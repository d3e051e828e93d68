"""What every service checks before it runs: the rules it will run and their credentials.

`serve`, `work` and `up` call `preflight(settings)` before they start anything: rule files
that load, with the credentials they need set, are accepted without touching Redis (a typo
is named at once, even with Redis down); refused files fall back to the deployment's
published version when this process can run it (worker.live_rules).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import redis

from worker.engine import Ruleset, load_ruleset, load_ruleset_from_texts
from worker.errors import ConfigError, RulesError
from worker.live_rules import Refusal, RuleSource
from worker.settings import Settings
from worker.storage.clients import sync_redis
from worker.storage.rules_publication import read_publication


def check_credentials(settings: Settings, ruleset: Ruleset) -> None:
    """Raise ConfigError naming the first credential the rules need and that is unset."""
    if settings.dry_run:
        return
    missing = settings.missing_credentials(
        awalchat=ruleset.uses_awalchat, helpwave=ruleset.uses_helpwave
    )
    if missing:
        raise ConfigError(
            f"{missing[0]} is not set: the rules call "
            f"{'AwalChat' if missing[0].startswith('AWALCHAT') else 'HelpWave'} "
            "(set it, or DRY_RUN=true to decide without calling)"
        )


def secret_values(settings: Settings) -> list[str]:
    """Every secret the settings hold: dead letters redact them wherever they appear."""
    secrets = [settings.awalchat_hmac_secret, settings.helpwave_api_key, settings.admin_token]
    secrets += list(settings.awalchat_webhook_secrets)
    return [s.get_secret_value() for s in secrets if s is not None]


def preflight(settings: Settings) -> Ruleset:
    """The ruleset a service will run, or the reason it must not start.

    Rule files that load, with the credentials they need set, are checked without touching
    Redis (a typo is named at once, even with Redis down). When they are refused, the
    deployment's published version (rulesource.py) is run instead if this process can run
    it; otherwise the files' RulesError, or ConfigError naming the unset setting, is raised.
    Raises ConfigError naming `REDIS_URL` when it is unset (or `REDIS_SENTINEL_MASTER` when
    REDIS_URL names sentinels without it).
    """
    try:
        ruleset = load_ruleset(settings.rules_path)
        check_credentials(settings, ruleset)
    except (RulesError, ConfigError) as refused:
        ruleset = _published_instead(settings, refused)
    settings.redis_target()  # REDIS_URL (and REDIS_SENTINEL_MASTER with sentinels) set
    return ruleset


def _published_instead(settings: Settings, refused: RulesError | ConfigError) -> Ruleset:
    """The published version's ruleset when this process can run it; else raise `refused`."""
    ruleset = None
    if settings.redis_url:
        client = sync_redis(settings.redis_target())
        try:
            publication = read_publication(client)
            if publication is not None:
                ruleset = load_ruleset_from_texts(publication.files)
                check_credentials(settings, ruleset)
        except (redis.RedisError, RulesError, ConfigError):
            ruleset = None
        finally:
            client.close()
    if ruleset is None:
        raise refused
    return ruleset


def rule_source(
    settings: Settings,
    client: redis.Redis,
    *,
    on_refused: Callable[[Refusal], None] | None = None,
    on_swapped: Callable[[Ruleset], None] | None = None,
) -> RuleSource:
    """The process's RuleSource: every version is checked for the credentials it needs (a
    reload or a publication this process cannot run is refused like a broken file).

    Raises the files' RulesError or ConfigError when they are refused and no published
    version can be run instead.
    """
    return RuleSource(
        settings.rules_path,
        client=client,
        check_runnable=functools.partial(check_credentials, settings),
        on_refused=on_refused,
        on_swapped=on_swapped,
    )
