"""Logging for the hub: stderr only (stdout belongs to the protocol under stdio), one line per event,
with secrets and personal data masked."""

from __future__ import annotations

import logging
import sys

from hub.redact import MaskingFilter


class _OneLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text.replace("\r", "\\r").replace("\n", "\\n")


def configure_logging(level: str = "info") -> None:
    """Send every log record to stderr as `time level logger: message` on a single line."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S"))
    handler.addFilter(MaskingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The SDK logs a full traceback for every line a stdio child garbles; our transport reports it once.
    for noisy in ("mcp.client.stdio", "httpx", "httpx2", "uvicorn.error"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
