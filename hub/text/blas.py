"""One BLAS thread for small matrix work: a query's embedding is a handful of small products, and
on a busy machine OpenBLAS's worker threads cost more than they save (p95 ×20 at load 8 on two
cores, `tools/bench/tool_search_latency.py`). A no-op where numpy's OpenBLAS cannot be found."""

from __future__ import annotations

import ctypes
import glob
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

_lock = threading.Lock()


@lru_cache(maxsize=1)
def _openblas() -> tuple[Any, Any] | None:
    """(get, set) thread-count functions of the OpenBLAS numpy loaded, or None."""
    import numpy

    for path in glob.glob(os.path.join(os.path.dirname(numpy.__file__), os.pardir, "numpy.libs", "*openblas*")):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for suffix in ("64_", ""):
            get = getattr(lib, f"scipy_openblas_get_num_threads{suffix}", None) or getattr(lib, f"openblas_get_num_threads{suffix}", None)
            put = getattr(lib, f"scipy_openblas_set_num_threads{suffix}", None) or getattr(lib, f"openblas_set_num_threads{suffix}", None)
            if get is not None and put is not None:
                return get, put
    return None


@contextmanager
def single_blas_thread() -> Iterator[None]:
    """Run the block with OpenBLAS on one thread, then restore the previous count."""
    found = _openblas()
    if found is None:
        yield
        return
    get, put = found
    with _lock:
        before = get()
        put(1)
        try:
            yield
        finally:
            put(before)
