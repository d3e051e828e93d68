"""A script queued on a pipeline costs the pipeline no round trip of its own, and runs on
a Redis whose script cache is empty (restarted, or a replica just promoted)."""

from __future__ import annotations

import pytest
import redis

from tests.helpers_redis import RedisServer
from worker.storage.pipelined import compact, register_script

INCR_BY = "return redis.call('INCRBY', KEYS[1], ARGV[1])"


def script_commands(client: redis.Redis) -> int:
    """SCRIPT EXISTS/LOAD/... calls the server has answered so far."""
    stats = client.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k.startswith("cmdstat_script"))


def test_a_pipelined_script_asks_nothing_first(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    script = register_script(redis_client, INCR_BY)
    before = script_commands(redis_client)
    pipe = redis_client.pipeline(transaction=False)
    pipe.set("other", "x")
    script(keys=["counter"], args=[5], client=pipe)
    script(keys=["counter"], args=[2], client=pipe)
    assert pipe.execute() == [True, 5, 7]
    assert script_commands(redis_client) == before


def test_a_pipelined_script_runs_after_the_cache_was_emptied(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    script = register_script(redis_client, INCR_BY)
    assert script(keys=["counter"], args=[1]) == 1  # EVALSHA, loaded on NOSCRIPT
    redis_client.script_flush()
    pipe = redis_client.pipeline(transaction=False)
    script(keys=["counter"], args=[1], client=pipe)
    assert pipe.execute() == [2]
    redis_client.script_flush()
    assert script(keys=["counter"], args=[1]) == 3  # on its own: re-loaded


def test_compact_drops_comment_lines_and_indentation_only() -> None:
    text = "-- what it does\nlocal x = 1  -- kept\n\n  if x then\n    return 'a -- b'\n  end\n"
    assert compact(text) == "local x = 1  -- kept\nif x then\nreturn 'a -- b'\nend"
    with pytest.raises(ValueError, match="long string"):
        compact("return [[\n-- text\n]]")
