"""Embedding a document's chunks with the embedder never idle between batches: batches go to worker
threads `IN_FLIGHT` at a time, so while the last texts of one batch finish on one core the next batch
already runs on the other (the default embedder runs one text per core; waiting for each batch
before starting the next left a core idle at every batch's tail). Results and progress come back in
batch order. A batch that fails fails the whole call, before anything is written; batches not yet
started are cancelled.

This relies on the event loop being asyncio (as `jobs.py` does): the next batch is an asyncio task.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import anyio

from servers.memory.embedding import Embedder

if TYPE_CHECKING:
    import numpy as np

Progress = Callable[[float, float, str], Awaitable[None]]
EMBED_BATCH = 32
IN_FLIGHT = 2


def abandon(task: asyncio.Task[Any]) -> None:
    """Cancel work whose outcome is no longer needed (a batch after another failed, the file after a
    stopped job); its outcome is collected, so asyncio logs nothing when it ends."""
    task.cancel()
    task.add_done_callback(lambda done: done.cancelled() or done.exception())


async def embed_batches(embedder: Embedder, texts: Sequence[str], progress: Progress | None = None, label: str = "",
                        submitted: Callable[[], None] | None = None) -> np.ndarray:
    """Vectors for `texts` (one row each), embedded `EMBED_BATCH` at a time with `IN_FLIGHT` batches
    running. `progress(done, total, message)` follows each batch in order; `submitted()` is called once
    the last batch has started (a folder job starts its next file then)."""
    import numpy as np

    vectors = np.zeros((len(texts), embedder.dimensions), dtype=np.float32)
    loop = asyncio.get_running_loop()
    pending: deque[tuple[int, asyncio.Task[np.ndarray]]] = deque()
    starts = range(0, len(texts), EMBED_BATCH)
    if not starts and submitted is not None:
        submitted()
    try:
        for index, start in enumerate(starts):
            batch = list(texts[start : start + EMBED_BATCH])
            pending.append((start, loop.create_task(anyio.to_thread.run_sync(embedder.embed, batch))))
            if index == len(starts) - 1 and submitted is not None:
                submitted()
            while len(pending) >= IN_FLIGHT or (pending and index == len(starts) - 1):
                first, task = pending.popleft()
                found = await task
                vectors[first : first + len(found)] = found
                if progress is not None:
                    done = first + len(found)
                    await progress(done, len(texts), f"embedded {done} of {len(texts)} chunks of {label}")
    finally:
        for _, task in pending:
            abandon(task)
    return vectors
