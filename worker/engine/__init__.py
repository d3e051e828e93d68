"""The rules engine: pure. No starlette, celery, redis or httpx here; `now` is an argument."""
