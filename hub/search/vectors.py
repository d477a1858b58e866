"""Tool embeddings cached across restarts, keyed by a hash of the embedded text and the model name.

One `.npz` file per model under the cache dir (`hub.datadir.default_cache_dir()`); it is written
whole to a temporary file and renamed, so a reader never sees half a file and two hubs writing at
once only lose each other's newest rows (recomputed on their next start).
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path

import numpy as np

logger = logging.getLogger("hub.search")

MAX_ROWS = 20_000
"""Rows kept per model file; beyond this the rows not used by the current index are dropped."""


class VectorCache:
    """`key → vector` for one embedding model, loaded once and saved after new rows are added."""

    def __init__(self, directory: Path | None, model: str) -> None:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", model)
        self.path = directory / "tool-search" / f"{safe}.npz" if directory is not None else None
        self.rows: dict[str, np.ndarray] = {}
        if self.path is not None and self.path.exists():
            try:
                with np.load(self.path) as data:
                    self.rows = {k: data[k] for k in data.files}
            except (OSError, ValueError) as exc:  # a damaged cache is rebuilt, never fatal
                logger.warning("ignoring the tool-search vector cache %s: %s", self.path, exc)

    def get(self, key: str) -> np.ndarray | None:
        return self.rows.get(key)

    def put_many(self, new: dict[str, np.ndarray], in_use: set[str]) -> None:
        """Add rows and write the file (best effort: a read-only cache dir only logs)."""
        self.rows.update(new)
        if len(self.rows) > MAX_ROWS:
            self.rows = {k: v for k, v in self.rows.items() if k in in_use}
        if self.path is None or not new:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".tmp.npz")
            with os.fdopen(fd, "wb") as out:
                np.savez(out, **self.rows)
            os.replace(tmp, self.path)
        except OSError as exc:
            logger.warning("could not write the tool-search vector cache %s: %s", self.path, exc)
