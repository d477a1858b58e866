"""Logging for the hub: stderr only (stdout belongs to the protocol under stdio), one line per event,
with secrets and personal data masked.

Masking happens where a record is made (a log-record factory), so it holds for every handler,
including ones a library installs later; our own handler also masks the formatted line (with any
traceback). Libraries that log payloads, per-request lines or session ids (`THIRD_PARTY`) are held
at WARNING whatever the hub's level: debug logging of the hub never writes request or response
bodies, tokens or session ids through them. A line is made inert (`hub.terminal.inert`: newlines and
every other control character written out), since it carries servers' stderr and errors.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from hub.redact import MaskingFilter, mask, mask_record
from hub.terminal import inert

THIRD_PARTY = (
    "mcp",  # session ids at INFO, messages and transport errors at DEBUG
    "sse_starlette",  # every response chunk at DEBUG
    "httpx",  # every request URL (with its query string) at INFO
    "httpcore",
    "httpx2",
    "uvicorn.access",
    "uvicorn.error",
    "hpack",
    "multipart",
    "python_multipart",
)


class _OneLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.exc_info or record.exc_text or record.stack_info:
            text = mask(text)  # the message is masked already (`mask_record`); this covers the traceback
        return inert(text)  # one line, and a server's stderr or error cannot drive the terminal (`hub.terminal`)


def configure_logging(level: str = "info") -> None:
    """Send every log record to stderr as `time level logger: message` on a single line."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S"))
    handler.addFilter(MaskingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    install_masking()
    logging.getLogger("mcp.server.streamable_http").addFilter(_client_gone_is_not_an_error)
    for name in THIRD_PARTY:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


def _client_gone_is_not_an_error(record: logging.LogRecord) -> bool:
    """The SDK logs ERROR with a traceback when a request body never arrives (the client went
    away, or the hub's guard answered 408): a caller's doing, not the hub's, so it is not logged
    (a caller could otherwise fill the log with tracebacks)."""
    from starlette.requests import ClientDisconnect

    exc = record.exc_info[1] if record.exc_info else None
    return not isinstance(exc, ClientDisconnect)


def install_masking() -> None:
    """Mask every record as it is created, and add the masking filter to every handler that
    exists now (idempotent)."""
    factory = logging.getLogRecordFactory()
    if not getattr(factory, "_mcp_hub_masking", False):
        logging.setLogRecordFactory(_masking_factory(factory))
    loggers = [logging.getLogger(), *(v for v in logging.Logger.manager.loggerDict.values() if isinstance(v, logging.Logger))]
    for logger in loggers:
        for handler in logger.handlers:
            if not any(isinstance(f, MaskingFilter) for f in handler.filters):
                handler.addFilter(MaskingFilter())


def _masking_factory(inner: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = inner(*args, **kwargs)
        mask_record(record)
        return record

    make._mcp_hub_masking = True  # type: ignore[attr-defined]
    return make
