"""An in-memory matrix of unit vectors keyed by SQLite row id, loaded once from the database and
kept in step with it, for exact cosine top-k (one BLAS matrix-vector product; 100k x 384 floats
is 150 MB and a few milliseconds). Rows can carry a group key (a memory scope) to search within."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

GROWTH = 1.5


class VectorIndex:
    def __init__(self, dimensions: int) -> None:
        self.dimensions = dimensions
        self._matrix: np.ndarray | None = None  # allocated on first use: a hub that never searches never loads numpy
        self._ids: np.ndarray | None = None
        self._groups: np.ndarray | None = None
        self._size = 0
        self._row_of: dict[int, int] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._size

    def add(self, ids: list[int], vectors: np.ndarray, groups: list[int] | None = None) -> None:
        import numpy as np

        with self._lock:
            if self._matrix is None or self._ids is None or self._groups is None:
                self._matrix = np.zeros((0, self.dimensions), dtype=np.float32)
                self._ids = np.zeros(0, dtype=np.int64)
                self._groups = np.zeros(0, dtype=np.int64)
            need = self._size + len(ids)
            if need > len(self._ids):
                capacity = max(need, int(len(self._ids) * GROWTH) + 64)
                self._matrix = np.resize(self._matrix, (capacity, self.dimensions))
                self._ids = np.resize(self._ids, capacity)
                self._groups = np.resize(self._groups, capacity)
            for offset, ident in enumerate(ids):
                row = self._row_of.get(ident)
                if row is None:
                    row = self._size
                    self._size += 1
                    self._row_of[ident] = row
                self._matrix[row] = vectors[offset]
                self._ids[row] = ident
                self._groups[row] = groups[offset] if groups else 0

    def remove(self, ids: list[int]) -> None:
        """Drop rows, moving the last row into each hole."""
        with self._lock:
            if self._matrix is None or self._ids is None or self._groups is None:
                return
            for ident in ids:
                row = self._row_of.pop(ident, None)
                if row is None:
                    continue
                last = self._size - 1
                if row != last:
                    moved = int(self._ids[last])
                    self._matrix[row], self._ids[row], self._groups[row] = self._matrix[last], moved, self._groups[last]
                    self._row_of[moved] = row
                self._size -= 1

    def search(self, query: np.ndarray, limit: int, group: int | None = None, allowed: set[int] | None = None) -> list[tuple[int, float]]:
        """(id, cosine) of the `limit` nearest rows, optionally only in `group` and/or among `allowed` ids."""
        import numpy as np

        with self._lock:
            if not self._size or self._matrix is None or self._ids is None or self._groups is None:
                return []
            scores = self._matrix[: self._size] @ query.astype(np.float32)
            ids = self._ids[: self._size]
            mask = None
            if group is not None:
                mask = self._groups[: self._size] == group
            if allowed is not None:
                permitted = np.isin(ids, np.fromiter(allowed, dtype=np.int64, count=len(allowed)))
                mask = permitted if mask is None else mask & permitted
            if mask is not None:
                scores = np.where(mask, scores, -np.inf)
            count = min(limit, self._size)
            top = np.argpartition(-scores, count - 1)[:count]
            top = top[np.argsort(-scores[top])]
            return [(int(ids[i]), float(scores[i])) for i in top if np.isfinite(scores[i])]
