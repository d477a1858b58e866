"""Folder ingest in the background: `ingest_folder` starts a job and answers at once with its id;
`ingest_status` reports its progress (and can wait for it, sending MCP progress notifications to a
caller that gave a progressToken). Each file is indexed in its own transaction, so search — keyword
right away, semantic too — already finds the files done while later ones are still embedding.

Decisions: jobs live in the server process's memory (a restart forgets them; re-running the folder
is cheap because unchanged files are no-ops). A job id starts with the server start's epoch, so a
poll of a job the restart cut off is told so, and how to resume, not "no such id" (outside review
memory26 D6). Bounds are per caller (owner), so one caller's jobs never push out another's (D4): at
most `MAX_JOBS` finished jobs and `MAX_PENDING` queued or running ones per owner. One job runs at a
time per server (so two ingests never compete for the CPU the embedder needs), the next one taken by
owner in turn (`servers.memory.turns`: one caller's queue never holds back another's job); a file that fails is recorded (first `MAX_ERRORS`) and the job goes on. A waiting
`ingest_status` sends progress at least every `KEEPALIVE_S` (the hub's deadline for the call is an
idle timer that progress restarts) and waits at most `MAX_WAIT_S`, below the hub's default hard
limit: it answers the job's state, never `timeout` (D5).
Within a job, up to `LOOK_AHEAD` files are in hand at once: later files are read, chunked and
embedded while earlier ones are written, and files are still committed in folder order.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import re
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Literal

import anyio
from pydantic import BaseModel, Field

from hub.argument_errors import preview
from servers.kit.errors import DomainError
from servers.memory.documents import DocumentStore, Prepared, Writer
from servers.memory.model import Ingested
from servers.memory.pipeline import abandon
from servers.memory.readers import SUPPORTED, read_document
from servers.memory.turns import FairTurns

MAX_JOBS = 50
"""Finished jobs kept per owner (the oldest of that owner's go first)."""
MAX_PENDING = 5
"""Queued or running jobs per owner; one more is refused (`rate_limited`) until one finishes."""
KEEPALIVE_S = 0.5
"""How often a waiting `ingest_status` reports progress while no file finishes."""
MAX_WAIT_S = 240.0
"""The longest `ingest_status` waits, whatever `wait_s` says: under the hub's default 300 s hard limit
(`hub.max_timeout_s`), which progress does not extend."""
MAX_ERRORS = 20
MAX_FILES = 10_000
LOOK_AHEAD = 4
State = Literal["queued", "running", "done", "failed"]
_JOB_ID = re.compile(r"[0-9a-f]{16}|[0-9a-f]{20}")
_last_epoch = 0


def _new_epoch() -> str:
    """Milliseconds since 1970 in 11 hex digits, later for each server start (ids compare as text)."""
    global _last_epoch
    _last_epoch = max(time.time_ns() // 1_000_000, _last_epoch + 1)
    return f"{_last_epoch:011x}"
Report = Callable[[float, float, str], Awaitable[None]]


class FileError(BaseModel):
    path: str
    message: str


class IngestJob(BaseModel):
    """A folder ingest's progress: files and chunks so far, the file being indexed, and errors."""

    id: str
    state: State = "queued"
    root: str
    files_total: int
    files_done: int = 0
    chunks_indexed: int = 0
    current: str | None = None
    counts: dict[str, int] = Field(default_factory=dict, description="documents per ingest status (created, unchanged, ...)")
    errors: list[FileError] = Field(default_factory=list)
    started_at: str
    finished_at: str | None = None


def folder_files(root: Path) -> list[Path]:
    """Every supported file under `root` (resolved, and allowed) whose real path is inside `root`
    too, in a stable order: a symlink out of the folder is skipped, as `ingest_document` would
    refuse it (`_prepare` checks again when it reads, in case a file became such a link meanwhile)."""
    found = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED and _inside(p, root))
    if len(found) > MAX_FILES:
        raise DomainError("invalid_argument", f"{root} holds {len(found)} supported files, more than {MAX_FILES}: "
                          "ingest its subfolders one by one")
    return found


def _inside(path: Path, root: Path) -> bool:
    try:
        return root in path.resolve().parents
    except OSError:  # a link loop, a file gone: not a file to read
        return False


def shown(value: str | Path) -> str:
    """A path, or a title taken from a file name, as text: a name that is not UTF-8 keeps a readable form."""
    return str(value).encode("utf-8", "surrogateescape").decode("utf-8", "replace")


class IngestJobs:
    """The folder-ingest jobs of one memory server."""

    def __init__(self, documents: DocumentStore) -> None:
        self.documents = documents
        self.jobs: dict[str, IngestJob] = {}
        self.owners: dict[str, str | None] = {}
        """Who started each job (`Writer.owner`): only they or an admin see it (outside review: any reader
        could read another's job, its server-side folder and errors, by its id)."""
        self.epoch = _new_epoch()
        """This server start's epoch (`_new_epoch`): the first 11 characters of every job id it gives."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._turns = FairTurns()
        """One job runs at a time; the next is taken by owner in turn (`servers.memory.turns`)."""
        self._changed = anyio.Event()

    def start(self, root: Path, files: list[Path], tags: list[str] | None, size: int, overlap: int,
              writer: Writer | None = None) -> IngestJob:
        """Queue the job and return at once; it runs on the server's event loop. An owner's oldest finished jobs
        beyond `MAX_JOBS` are dropped; others' are left alone."""
        owner = writer.owner if writer is not None else None
        mine = [j for j in self.jobs.values() if self.owners.get(j.id) == owner]
        pending = [j for j in mine if j.state in ("queued", "running")]
        if len(pending) >= MAX_PENDING:
            raise DomainError("rate_limited", f"you already have {len(pending)} folder ingests queued or running (at most "
                              f"{MAX_PENDING}): wait for one with ingest_status(job_id={pending[0].id!r}, wait_s=...) and "
                              "start this one then", retry_after_s=5.0, details={"job_ids": [j.id for j in pending]})
        now = _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()
        job = IngestJob(id=self.epoch + uuid.uuid4().hex[:9], root=str(root), files_total=len(files), started_at=now)
        finished = [j for j in mine if j.state in ("done", "failed")]
        for old in finished[: max(0, len(finished) + 1 - MAX_JOBS)]:
            del self.jobs[old.id]
            self.owners.pop(old.id, None)
        self.jobs[job.id] = job
        self.owners[job.id] = owner
        task = asyncio.get_running_loop().create_task(self._run(job, files, tags, size, overlap, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    def get(self, job_id: str, viewer: Writer | None = None) -> IngestJob:
        """The job, for its starter or an admin (`viewer`; None: the server itself). Another caller's job is
        `not_found`, as one that never was."""
        job = self.jobs.get(job_id)
        if job is None or (viewer is not None and not viewer.admin and self.owners.get(job_id) != viewer.owner):
            raise self._unknown(job_id)
        return job

    def _unknown(self, job_id: str) -> DomainError:
        """What a poll of a job this server does not hold is told: one from before its start was cut off by the
        restart (say how to resume); else no such job here (perhaps one of the caller's `MAX_JOBS` oldest)."""
        if _JOB_ID.fullmatch(job_id) and (len(job_id) == 16 or job_id[:11] < self.epoch):  # 16: ids before epochs
            return DomainError("not_found", f"ingest job {job_id!r} was started before this server last restarted, which "
                               "cut it off (jobs live in the server's memory). The files it finished are indexed; run "
                               "ingest_folder on the same folder again to resume: files already indexed are skipped as "
                               "unchanged.", details={"job_id": job_id, "reason": "server_restarted"})
        return DomainError("not_found", f"ingest job {preview(job_id)} does not exist on this server (check the id; only "
                           f"your last {MAX_JOBS} finished jobs are kept): run ingest_folder again to see the folder's state",
                           details={"job_id": job_id[:100]})

    async def wait(self, job_id: str, timeout_s: float, report: Report | None = None,
                   viewer: Writer | None = None) -> IngestJob:
        """The job once it has finished or `timeout_s` (at most `MAX_WAIT_S`) passed, reporting each file done to
        `report`, and at least every `KEEPALIVE_S` meanwhile: a file that embeds for minutes must not leave the
        call silent past the hub's idle deadline. Progress only grows: between files it creeps towards the next
        whole file, never reaching it."""
        job = self.get(job_id, viewer)
        ticks, reported = 0, anyio.current_time()
        with anyio.move_on_after(min(timeout_s, MAX_WAIT_S)):
            while job.state in ("queued", "running"):
                changed, done, seen = self._changed, job.files_done, (job.state, job.files_done, job.chunks_indexed, job.current)
                with anyio.move_on_after(max(0.0, reported + KEEPALIVE_S - anyio.current_time())):
                    await changed.wait()
                if anyio.current_time() < reported + KEEPALIVE_S and \
                        seen == (job.state, job.files_done, job.chunks_indexed, job.current):
                    continue  # another caller's job moved: nothing of this one to report yet (outside review r39a #7)
                reported = anyio.current_time()
                # a queued job has not begun: it reports no creeping progress
                ticks = 0 if job.files_done != done or job.state == "queued" else ticks + 1
                if report is not None:
                    await report(job.files_done + ticks / (ticks + 1), job.files_total,
                                 f"{job.state}: {job.files_done} of {job.files_total} files, {job.chunks_indexed} chunks"
                                 + (f", indexing {job.current}" if job.current else ""))
        return job

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def _prepare(self, root: Path, path: Path, tags: list[str] | None, size: int, overlap: int,
                       submitted: Callable[[], None], writer: Writer | None = None) -> Ingested | Prepared:
        """Read and embed one file; what is wrong with the file itself (outside the folder by now, a
        read error) is a `DomainError` for it alone, and the job goes on."""
        if not _inside(path, root):
            raise DomainError("forbidden", f"{shown(path)} leads outside the folder being ingested (a symbolic link?)")
        try:
            title, text = await anyio.to_thread.run_sync(read_document, path)
        except OSError as exc:
            raise DomainError("invalid_argument", f"{shown(path)} could not be read ({exc.strerror or type(exc).__name__})") from None
        title = shown(title)
        return await self.documents.prepare(title, text, path.resolve().as_uri(), tags, None, size, overlap, submitted=submitted,
                                            writer=writer, from_file=True)

    async def _run(self, job: IngestJob, files: list[Path], tags: list[str] | None, size: int, overlap: int,
                   writer: Writer | None = None) -> None:
        """Files are committed one by one, in order. Later files are read, chunked and embedded while
        earlier ones finish embedding and are written, so the embedder's cores never wait for reading,
        chunking or SQLite between files: the next file starts once every file in hand has started its
        last embedding batch, up to `LOOK_AHEAD` files in hand (small files embed in one batch each)."""
        loop = asyncio.get_running_loop()
        in_hand: deque[_InHand] = deque()
        following = 0

        def fill() -> None:
            nonlocal following
            while following < len(files) and len(in_hand) < LOOK_AHEAD and all(f.submitted for f in in_hand):
                entry = _InHand(files[following])
                following += 1

                def submitted(entry: _InHand = entry) -> None:
                    if not entry.submitted:
                        entry.submitted = True
                        fill()

                entry.task = loop.create_task(self._prepare(Path(job.root), entry.path, tags, size, overlap, submitted, writer))
                entry.task.add_done_callback(lambda _, mark=submitted: mark())  # ended without embedding (no-op, failed)
                in_hand.append(entry)

        async with self._turns.turn(self.owners.get(job.id)):
            job.state = "running"
            self._notify()
            try:
                fill()
                while in_hand:
                    entry = in_hand[0]
                    job.current = shown(entry.path.name)
                    try:
                        prepared = await entry.task
                        result = prepared if isinstance(prepared, Ingested) else await self.documents.commit(prepared)
                        job.counts[result.status] = job.counts.get(result.status, 0) + 1
                        if result.status in ("created", "replaced"):
                            job.chunks_indexed += result.document.chunks
                    except DomainError as exc:
                        job.counts["failed"] = job.counts.get("failed", 0) + 1
                        if len(job.errors) < MAX_ERRORS:
                            job.errors.append(FileError(path=shown(entry.path), message=exc.body.message))
                    in_hand.popleft()
                    job.files_done += 1
                    self._notify()
                    fill()
                job.state = "done"
            except Exception as exc:  # noqa: BLE001 - a job must end in a state a caller can read
                job.state = "failed"
                job.errors.append(FileError(path=job.current or job.root, message=f"ingest stopped: {type(exc).__name__}"))
            finally:
                following = len(files)  # start nothing more
                for entry in in_hand:
                    abandon(entry.task)  # running or not: a failure of a file never reached is not logged as lost
                job.current = None
                job.finished_at = _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()
                self._notify()


class _InHand:
    """A file of a running job: being read, chunked or embedded, or waiting for its turn to be written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.submitted = False  # its last embedding batch has started, or it ended
        self.task: asyncio.Task[Ingested | Prepared]
