"""Tool embeddings cached across restarts, keyed by a hash of the embedded text and the model name.

Two files per model under the cache dir (`hub.datadir.default_cache_dir()`): `<model>.npz`, the
compacted rows, and `<model>.rows`, rows appended since (review search15 #1: every re-index used to
rewrite the whole `.npz` — 16 MB at 1,000 tools — so a server rewording its tools every 250 ms kept
the disk busy). Decided:

- new rows are **appended** in one `write` per re-index (an `O_APPEND` write of whole records:
  `u16` key length, key, `u32` dimensions, float32 values), so a re-index writes what it embedded,
  not the cache;
- the log is folded into the `.npz` (written whole to a temporary file and renamed, so a reader never
  sees half a file) when there is no `.npz` yet (a cold start's rows), else only once it holds at least
  as many rows as the `.npz` and at least `COMPACT_ROWS`: a compaction rewrites at most twice what was appended since the last one, so
  writes stay linear in what is embedded, however often a server changes;
- rows: at most `MAX_ROWS` are kept in memory and in the `.npz`; past that, the rows the current
  index does not use are dropped, so texts a server churned through are not carried for ever;
- a reader takes the `.npz` then the log, and stops at a torn last record (a hub killed mid-write
  loses only that row). Two hubs sharing the directory only lose each other's rows appended between a
  compaction's read of the log and its truncation (recomputed on their next start).
"""

from __future__ import annotations

import logging
import os
import re
import struct
import tempfile
from pathlib import Path

import numpy as np

logger = logging.getLogger("hub.search")

MAX_ROWS = 20_000
"""Rows kept per model; beyond this the rows not used by the current index are dropped."""
COMPACT_ROWS = 4_096
"""The append log is folded into the `.npz` once it holds this many rows and as many as the `.npz`."""
_HEAD = struct.Struct("<H")
_DIMS = struct.Struct("<I")


class VectorCache:
    """`key → vector` for one embedding model, loaded once; new rows appended, compacted now and then."""

    def __init__(self, directory: Path | None, model: str) -> None:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", model)
        self.path = directory / "tool-search" / f"{safe}.npz" if directory is not None else None
        self.log = self.path.with_suffix(".rows") if self.path is not None else None
        self.rows: dict[str, np.ndarray] = {}
        self.compacted = 0
        """Rows in the `.npz` as last read or written."""
        self.logged = 0
        """Rows appended to the log since (by this process or, as last read, others)."""
        self.bytes_written = 0
        """Bytes this cache wrote (for checks)."""
        if self.path is not None and self.path.exists():
            try:
                with np.load(self.path) as data:
                    self.rows = {k: data[k] for k in data.files}
                self.compacted = len(self.rows)
            except (OSError, ValueError) as exc:  # a damaged cache is rebuilt, never fatal
                logger.warning("ignoring the tool-search vector cache %s: %s", self.path, exc)
        logged = self._read_log()
        self.rows.update(logged)
        self.logged = len(logged)

    def get(self, key: str) -> np.ndarray | None:
        return self.rows.get(key)

    def put_many(self, new: dict[str, np.ndarray], in_use: set[str]) -> None:
        """Add rows, append them to the log and compact when it is due (best effort: a read-only cache dir
        only logs)."""
        self.rows.update(new)
        if len(self.rows) > MAX_ROWS:
            self.rows = {k: v for k, v in self.rows.items() if k in in_use}
        if self.path is None or self.log is None or not new:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._append(new)
            if not self.compacted or self.logged >= max(COMPACT_ROWS, self.compacted):
                self._compact(in_use)
        except OSError as exc:
            logger.warning("could not write the tool-search vector cache %s: %s", self.path, exc)

    def _append(self, new: dict[str, np.ndarray]) -> None:
        assert self.log is not None
        chunks: list[bytes] = []
        for key, vector in new.items():
            raw = key.encode()
            values = np.ascontiguousarray(vector, dtype="<f4")
            chunks += [_HEAD.pack(len(raw)), raw, _DIMS.pack(values.size), values.tobytes()]
        data = b"".join(chunks)
        fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        self.logged += len(new)
        self.bytes_written += len(data)

    def _read_log(self) -> dict[str, np.ndarray]:
        """The rows appended to the log, up to a torn last record."""
        if self.log is None:
            return {}
        try:
            data = self.log.read_bytes()
        except OSError:
            return {}
        out: dict[str, np.ndarray] = {}
        at = 0
        while at + _HEAD.size <= len(data):
            (length,) = _HEAD.unpack_from(data, at)
            start = at + _HEAD.size + length
            if start + _DIMS.size > len(data):
                break
            (dims,) = _DIMS.unpack_from(data, start)
            end = start + _DIMS.size + 4 * dims
            if end > len(data):
                break
            try:
                key = data[at + _HEAD.size:start].decode()
            except UnicodeDecodeError:
                break
            out[key] = np.frombuffer(data, dtype="<f4", count=dims, offset=start + _DIMS.size).astype(np.float32)
            at = end
        return out

    def _compact(self, in_use: set[str]) -> None:
        """Fold the log (ours and other hubs' rows) into a new `.npz`, then empty the log."""
        assert self.path is not None and self.log is not None
        self.rows = {**self._read_log(), **self.rows}
        if len(self.rows) > MAX_ROWS:
            self.rows = {k: v for k, v in self.rows.items() if k in in_use}
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".tmp.npz")
        with os.fdopen(fd, "wb") as out:
            np.savez(out, **self.rows)
        self.bytes_written += os.path.getsize(tmp)
        os.replace(tmp, self.path)
        with open(self.log, "wb"):
            pass
        self.compacted, self.logged = len(self.rows), 0
