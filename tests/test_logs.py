"""Structured logs: one JSON object per line, extras included, httpx's per-request lines
left out (the worker logs each action itself)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from worker.logs import configure_logging


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    out = io.StringIO()
    configure_logging(stream=out)
    yield out
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.NOTSET)


def test_a_record_is_one_json_line_with_its_extras(stream: io.StringIO) -> None:
    logging.getLogger("worker.test").info("action %s", "done", extra={"delivery_id": "d1"})
    line = json.loads(stream.getvalue())
    assert line["message"] == "action done"
    assert line["level"] == "info"
    assert line["delivery_id"] == "d1"


def test_httpx_request_lines_are_left_out_but_its_warnings_kept(stream: io.StringIO) -> None:
    logging.getLogger("httpx").info("HTTP Request: POST http://x/ 200 OK")
    logging.getLogger("httpcore.connection").debug("connect_tcp.started")
    logging.getLogger("httpx").warning("something odd")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["message"] for line in lines] == ["something odd"]


def test_in_the_background_lines_are_written_by_one_thread_and_all_drained_at_stop() -> None:
    import worker.logs

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    out = io.StringIO()
    configure_logging(stream=out, background=True)
    try:
        log = logging.getLogger("worker.test")
        for n in range(200):
            log.info("event %d", n, extra={"delivery_id": f"d{n}"})
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed", extra={"delivery_id": "dx"})
        assert worker.logs._writer is not None
        worker.logs.stop_log_writer()  # what exit does: every queued line written
        worker.logs.stop_log_writer()  # and again: nothing left to do
        lines = [json.loads(line) for line in out.getvalue().splitlines()]
        assert [line["message"] for line in lines[:200]] == [f"event {n}" for n in range(200)]
        assert lines[5]["delivery_id"] == "d5"
        assert lines[200]["message"] == "failed"
        assert "ValueError: boom" in lines[200]["exception"]
        assert len(lines) == 201
    finally:
        worker.logs.stop_log_writer()
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
