"""Structured logs: one JSON object per line on stderr, via the standard `logging` module.

Call `configure_logging()` once in an entry point. Context goes in `extra=`:

    log.info("webhook already seen", extra={"delivery_id": ..., "conversation_id": ...})

Never pass a secret, a signature or a raw body: whatever is in `extra` is printed.
"""

from __future__ import annotations

import atexit
import json
import logging
import queue
import sys
import threading
import time
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

_BATCH = 4096  # lines the writer joins into one write at most
_GATHER = 0.05  # seconds the writer lets lines gather after the first
_STOP = "\x00stop"  # not a JSON line: tells the writer to finish


class LineWriter(logging.Handler):
    """Formats each record in the thread that logs it (no lock: formatting is pure and the
    queue is thread-safe) and hands the line to one writer thread, which wakes for the first
    line, lets more gather for `_GATHER` seconds and writes them all in one `write`: under
    load a worker thread neither waits for a write nor drops the GIL to make one, and the
    writer takes the GIL about 20 times a second, not once per line."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self._stream = stream
        self._lines: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write, name="log-writer", daemon=True)
        self._thread.start()

    def createLock(self) -> None:
        self.lock = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._lines.put(self.format(record))
        except Exception:
            self.handleError(record)

    def stop(self) -> None:
        """Write what is queued and end the thread."""
        if self._thread.is_alive():
            self._lines.put(_STOP)
            self._thread.join(timeout=5)

    def _write(self) -> None:
        while True:
            batch = [self._lines.get()]
            time.sleep(_GATHER)  # let more lines come: one wake and one write for them all
            while len(batch) < _BATCH:
                try:
                    batch.append(self._lines.get_nowait())
                except queue.Empty:
                    break
            done = _STOP in batch
            lines = [line for line in batch if line != _STOP]
            if lines:
                try:
                    self._stream.write("\n".join(lines) + "\n")
                    self._stream.flush()
                except (OSError, ValueError):
                    pass  # stderr closed: nowhere left to say so
            if done:
                return


_writer: LineWriter | None = None  # the background writer, when there is one


@atexit.register
def stop_log_writer() -> None:
    """Write every queued line and stop the background writer (at exit; idempotent)."""
    global _writer
    if _writer is not None:
        _writer.stop()
        _writer = None


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

    `background` (the worker: `work`): a record is formatted by the thread that logs it and
    written by one writer thread (`LineWriter`, drained at exit). Worker threads then never
    wait for a write, nor queue behind a thread that holds the handler's lock while it waits
    for the GIL (9% of a worker thread's time under load, 4 threads). What a SIGKILL can
    lose: the lines not yet written, up to `_GATHER` (50 ms) worth. The uvicorn services write
    in place: uvicorn ends a SIGTERMed process by raising the signal again, which skips the
    exit handlers that drain the writer.
    """
    global _writer
    stop_log_writer()
    out = stream if stream is not None else sys.stderr
    handler: logging.Handler = logging.StreamHandler(out)
    if background:
        handler = _writer = LineWriter(out)
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
