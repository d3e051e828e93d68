"""Structured logs: one JSON object per line on stderr, via the standard `logging` module.

Call `configure_logging()` once in an entry point. Context goes in `extra=`:

    log.info("webhook already seen", extra={"delivery_id": ..., "conversation_id": ...})

Never pass a secret, a signature or a raw body: whatever is in `extra` is printed.
"""

from __future__ import annotations

import atexit
import json
import logging
import logging.handlers
import queue
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's copy of the message with terminal colours
}

# httpx logs every request at INFO ("HTTP Request: POST ... 200"): the worker already logs
# each action's outcome with its delivery and rule, so those lines only doubled the log
# volume (and the time spent writing it). Their warnings still show.
_CHATTY = ("httpx", "httpcore")

_listener: logging.handlers.QueueListener | None = None  # the writer thread, when in the background


@atexit.register
def stop_log_writer() -> None:
    """Write every queued line and stop the background writer (at exit; idempotent)."""
    global _listener
    if _listener is not None:
        _listener.stop()
        _listener = None


class JsonFormatter(logging.Formatter):
    """Formats a record as a JSON line: time, level, logger, message, then its extras."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        attributes = record.__dict__
        for key in attributes.keys() - _STANDARD:
            if not key.startswith("_"):
                line[key] = attributes[key]
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def configure_logging(
    level: int | str = logging.INFO, stream: TextIO | None = None, *, background: bool = False
) -> None:
    """Send every log record of the process to `stream` (stderr) as JSON lines.

    `background` (the services: serve, work, up, console): a record is formatted by the
    thread that logs it and written by one writer thread (`QueueHandler` and
    `QueueListener`, stopped and drained at exit). Worker threads then never wait for a
    write, nor queue behind a thread that holds the handler's lock while it waits for the
    GIL (9% of a worker thread's time under load, 4 threads). What a SIGKILL can lose: the
    lines not yet written, a few milliseconds' worth.
    """
    global _listener
    stop_log_writer()
    writer = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler: logging.Handler = writer
    if background:
        lines: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        handler = logging.handlers.QueueHandler(lines)  # formats in the caller's thread
        _listener = logging.handlers.QueueListener(lines, writer)
        _listener.start()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # A line shows none of where the call was made, or the thread's and process's names:
    # skip gathering them for every record (the logging HOWTO's "Optimization" section).
    # The worker writes two lines per event; gathering them took a third of each line.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    for chatty in _CHATTY:
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))
