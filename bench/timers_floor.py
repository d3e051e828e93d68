"""The floor of `bench.timers`: the same `close_ticket` calls made by the bare client alone.

    python -m bench.timers_floor --count 10000 --due 1767225600.0

One process, 4 threads, each with its own AwalChat client built as the Celery baseline's
(`plain_awalchat_client`, the client ours uses); every thread sleeps until `due`, then
closes its share of the `count` conversations one after another. No Redis, no decisions,
no queue: the soonest one worker process of 4 threads could make these calls. Reads the
service's settings (`AWALCHAT_*`) from the environment.
"""

from __future__ import annotations

import argparse
import threading
import time

from bench.baselines import plain_awalchat_client
from bench.timers import FIRST
from worker.settings import Settings

THREADS = 4


def close_all(settings: Settings, count: int, due: float, threads: int = THREADS) -> None:
    """Close conversations FIRST .. FIRST + count - 1 from `threads` threads, starting at
    `due` (a Unix time); return when every call was answered."""
    phone_number_id = settings.awalchat_phone_number_id or "1"
    conversations = [str(FIRST + n) for n in range(count)]

    def close_share(share: list[str]) -> None:
        client = plain_awalchat_client(settings)
        time.sleep(max(0.0, due - time.time()))
        for conversation in share:
            client.close_ticket(conversation, phone_number_id)

    workers = [
        threading.Thread(target=close_share, args=(conversations[n::threads],))
        for n in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--due", type=float, required=True, help="Unix time to start at")
    args = parser.parse_args()
    close_all(Settings(), args.count, args.due)


if __name__ == "__main__":
    main()
