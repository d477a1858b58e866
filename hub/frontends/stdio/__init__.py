"""The hub's stdio front end: pipes, line framing, malformed-line answers, the tools/call fast path."""
