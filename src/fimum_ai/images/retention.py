"""Retention (spec 5.1 `caching.filesystem_ttl`, section 8.2, FR-GDPR-004): nothing of a user's image
requests outlives the TTL (7 days by default; 0 keeps everything forever).

One run (`run_cleanup`) deletes, in bounded batches:
- Images created before the cut-off: the row, then its files (original, thumbnail, metadata, kept
  source). A file that a younger row still points at stays until the last row that needs it goes
  (a duplicate shares its twin's original and thumbnail). Rows go first and files after the commit:
  a crash in between leaves files without a row (swept below), never a row without its files.
- Finished jobs (completed, failed, cancelled) that ended before the cut-off, with the request and
  its prompt. Queued and running jobs are live work and stay.
- Input files under data/uploads whose job has finished (the job removes them itself; these are the
  leftovers of a crash), or whose job does not exist and that are over an hour old.
- Files under data/images that no row points at and that are over an hour old: a crash between
  writing the files and the row, or the temp file of an interrupted write.
- Empty month and year folders, except the current and previous month's (where writers are busy).

Safe to run from several processes at once: on PostgreSQL a session advisory lock lets one run at a
time (the others skip) and batches take their rows FOR UPDATE SKIP LOCKED; on SQLite a lock file in
data_dir does the same for the processes of one machine (the server and `fimum cleanup`). A second
run finds nothing to do. Logs carry counts only, never a prompt.

Scheduling: `CleanupSchedule` in the embedded server; distributed mode runs it from the Celery
workers' sweeper (fimum_ai.workers.task_queue). `fimum cleanup` runs it by hand.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import and_, delete, or_, select, text
from sqlalchemy.orm import Session

from fimum_ai.db import Database, ImageJob, StoredImage
from fimum_ai.images.storage import ImageStore, referenced_paths, row_files
from fimum_ai.settings import Settings

_Row = TypeVar("_Row", StoredImage, ImageJob)

log = logging.getLogger(__name__)

FINISHED = ("completed", "failed", "cancelled")
# A file no row points at is left alone this long: its row may be on its way (files are written
# before the row; a cache copy is linked before its row commits).
ORPHAN_GRACE_S = 3600.0
# The embedded server's first run comes this soon after start (then every cleanup_interval_s).
FIRST_RUN_DELAY_S = 60.0
DEFAULT_BATCH = 500

_AGE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(value: str) -> float:
    """`7d`, `12h`, `30m`, `90s`, `1w` or plain seconds -> seconds (> 0)."""
    found = _AGE_RE.match(value)
    if not found:
        raise ValueError(f"{value!r} is not an age; use e.g. 7d, 12h, 30m, 90s or seconds")
    seconds = float(found.group(1)) * _UNIT_S[found.group(2).lower()]
    if seconds <= 0:
        raise ValueError(f"{value!r}: the age must be more than 0")
    return seconds


def ttl_of(settings: Settings) -> float:
    return float(settings.image_generation.caching.filesystem_ttl)


def is_expired(created_at: datetime, settings: Settings, *, margin_s: float = 0.0) -> bool:
    """True when a row created at `created_at` is past the TTL (or within `margin_s` of it)."""
    ttl = ttl_of(settings)
    if ttl <= 0:
        return False
    return created_at <= datetime.now(UTC) - timedelta(seconds=ttl - margin_s)


@dataclass
class CleanupReport:
    """What one run deleted (or, in a dry run, would delete). Counts only: nothing of the content."""

    older_than_s: float
    cutoff: datetime | None
    dry_run: bool = False
    images: int = 0  # gallery rows
    jobs: int = 0  # finished job rows (with their prompts)
    files: int = 0  # image files (original, thumbnail, metadata, source)
    uploads: int = 0  # leftover input files under data/uploads
    orphans: int = 0  # files under data/images that no row pointed at
    folders: int = 0  # empty month/year folders removed (not counted in a dry run)
    bytes_freed: int = 0
    seconds: float = 0.0
    skipped: str | None = None  # why nothing was done: "keep forever", "another clean-up is running"
    _seen: set[str] = field(default_factory=set, repr=False)  # a dry run's counted files

    def as_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "_seen"}
        data["cutoff"] = self.cutoff.isoformat() if self.cutoff else None
        return data


def run_cleanup(
    database: Database,
    store: ImageStore,
    *,
    older_than_s: float | None = None,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH,
    stop: threading.Event | None = None,
    now: datetime | None = None,
) -> CleanupReport:
    """Delete what is older than `older_than_s` (default: the configured filesystem_ttl; 0 = keep
    forever). Blocking: run it in a thread from async code. `stop` ends it between two batches."""
    ttl = ttl_of(database.settings) if older_than_s is None else float(older_than_s)
    moment = now or datetime.now(UTC)
    if ttl <= 0:
        return CleanupReport(older_than_s=ttl, cutoff=None, dry_run=dry_run, skipped="keep forever")
    report = CleanupReport(older_than_s=ttl, cutoff=moment - timedelta(seconds=ttl), dry_run=dry_run)
    started = time.monotonic()
    with _exclusive(database, store.data_dir) as mine:
        if not mine:
            report.skipped = "another clean-up is running"
            log.info("retention clean-up skipped: another one is running")
            return report
        run = _Run(database, store, report, moment, max(1, batch_size), stop or threading.Event())
        run.images()
        run.jobs()
        run.uploads()
        run.orphans()
        if not dry_run:
            run.folders()
    report.seconds = round(time.monotonic() - started, 3)
    log.info(
        "retention clean-up done" if not dry_run else "retention clean-up dry run",
        extra={k: v for k, v in report.as_dict().items() if k not in ("skipped", "cutoff")},
    )
    return report


class _Run:
    def __init__(
        self,
        database: Database,
        store: ImageStore,
        report: CleanupReport,
        now: datetime,
        batch: int,
        stop: threading.Event,
    ) -> None:
        self.db = database
        self.store = store
        self.report = report
        self.now = now
        self.batch = batch
        self.stop = stop
        assert report.cutoff is not None
        self.cutoff: datetime = report.cutoff
        self.dry = report.dry_run

    def _remove(self, paths: list[str]) -> tuple[int, int]:
        if self.dry:  # nothing goes, so remember what was counted (a real run finds it gone)
            paths = [p for p in paths if p not in self.report._seen]
            self.report._seen.update(paths)
        files, freed = self.store.remove(paths, dry_run=self.dry)
        self.report.bytes_freed += freed
        return files, freed

    def _page(
        self, session: Session, model: type[_Row], where: Any, last: tuple[datetime, str] | None
    ) -> list[_Row]:
        """The next batch of `model` rows matching `where`, in (created_at, id) order after `last`:
        keyset paging, so every batch moves on, even past rows others hold."""
        query = select(model).where(where)
        if last is not None:
            query = query.where(
                or_(model.created_at > last[0], and_(model.created_at == last[0], model.id > last[1]))
            )
        query = query.order_by(model.created_at, model.id).limit(self.batch)
        if not self.dry:
            # Another process's clean-up (or a user's delete) holds some: leave them to it.
            query = query.with_for_update(skip_locked=True)
        return list(session.scalars(query).all())

    def images(self) -> None:
        last: tuple[datetime, str] | None = None
        while not self.stop.is_set():
            with self.db.session() as session, session.begin():
                rows = self._page(session, StoredImage, StoredImage.created_at < self.cutoff, last)
                if not rows:
                    return
                last = (rows[-1].created_at, rows[-1].id)
                paths = {p for row in rows for p in row_files(row)}
                if self.dry:
                    # Rows of this run all go; a file stays only for a row that is not expired.
                    loose = paths - referenced_paths(session, paths, StoredImage.created_at >= self.cutoff)
                else:
                    session.execute(delete(StoredImage).where(StoredImage.id.in_([r.id for r in rows])))
                    loose = paths - referenced_paths(session, paths)
                self.report.images += len(rows)
            files, _ = self._remove(sorted(loose))  # after the commit
            self.report.files += files

    def jobs(self) -> None:
        finished_before = or_(
            ImageJob.finished_at < self.cutoff,
            and_(ImageJob.finished_at.is_(None), ImageJob.created_at < self.cutoff),
        )
        last: tuple[datetime, str] | None = None
        while not self.stop.is_set():
            with self.db.session() as session, session.begin():
                rows = self._page(
                    session, ImageJob, and_(ImageJob.status.in_(FINISHED), finished_before), last
                )
                if not rows:
                    return
                last = (rows[-1].created_at, rows[-1].id)
                inputs = [str(f) for job in rows for f in (job.inputs or {}).get("files") or [] if f]
                if not self.dry:
                    session.execute(delete(ImageJob).where(ImageJob.id.in_([j.id for j in rows])))
                self.report.jobs += len(rows)
            files, _ = self._remove(inputs)
            self.report.uploads += files

    def uploads(self) -> None:
        """data/uploads/{user}/{job}_image.png, _mask.png: inputs of jobs that have ended."""
        root = self.store.path("uploads")
        for user_dir in _subdirs(root):
            if self.stop.is_set():
                return
            by_job: dict[str, list[Path]] = {}
            for entry in _files(user_dir):
                job_id = entry.name.lstrip(".").split("_", 1)[0]
                by_job.setdefault(job_id, []).append(entry)
            ids = sorted(by_job)
            status: dict[str, str] = {}
            for start in range(0, len(ids), self.batch):
                with self.db.session() as session:
                    chunk = ids[start : start + self.batch]
                    found = session.execute(
                        select(ImageJob.id, ImageJob.status).where(ImageJob.id.in_(chunk))
                    ).all()
                    status.update({str(job_id): str(state) for job_id, state in found})
            doomed: list[str] = []
            for job_id, entries in by_job.items():
                state = status.get(job_id)
                for entry in entries:
                    if state in FINISHED or (state is None and self._old(entry)):
                        doomed.append(self._relative(entry))
            files, _ = self._remove(doomed)
            self.report.uploads += files

    def orphans(self) -> None:
        """Files under data/images/{user}/{yyyy}/{mm}/ that no row points at (after a grace period)."""
        for user_dir in _subdirs(self.store.path("images")):
            for year_dir in _subdirs(user_dir):
                for month_dir in _subdirs(year_dir):
                    if self.stop.is_set():
                        return
                    candidates = [
                        self._relative(f)
                        for f in _files(month_dir)
                        if self._old(f) and self._relative(f) not in self.report._seen
                    ]
                    if not candidates:
                        continue
                    prefix = self._relative(month_dir) + "/"
                    columns = (
                        StoredImage.original_path,
                        StoredImage.thumbnail_path,
                        StoredImage.metadata_path,
                        StoredImage.source_path,
                    )
                    with self.db.session() as session:
                        rows = session.execute(
                            select(*columns).where(
                                StoredImage.user_id == user_dir.name,
                                or_(*(c.startswith(prefix, autoescape=True) for c in columns)),
                            )
                        ).all()
                    used = {p for row in rows for p in row if p}
                    files, _ = self._remove([c for c in candidates if c not in used])
                    self.report.orphans += files

    def folders(self) -> None:
        """Empty month and year folders; never the current or the previous month's."""
        now = datetime.now(UTC)
        previous = now.replace(day=1) - timedelta(days=1)
        busy = {(f"{now.year:04d}", f"{now.month:02d}"), (f"{previous.year:04d}", f"{previous.month:02d}")}
        busy_years = {year for year, _ in busy}
        for user_dir in _subdirs(self.store.path("images")):
            for year_dir in _subdirs(user_dir):
                for month_dir in _subdirs(year_dir):
                    if (year_dir.name, month_dir.name) not in busy and _rmdir(month_dir):
                        self.report.folders += 1
                if year_dir.name not in busy_years and _rmdir(year_dir):
                    self.report.folders += 1

    def _old(self, path: Path) -> bool:
        try:
            stat = path.lstat()
        except FileNotFoundError:
            return False
        # ctime too: a hard link (a cache copy) keeps the old mtime but is brand new.
        touched = max(stat.st_mtime, stat.st_ctime)
        return touched < self.now.timestamp() - ORPHAN_GRACE_S

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.store.data_dir).as_posix()


def _subdirs(folder: Path) -> list[Path]:
    try:
        return sorted(Path(e.path) for e in os.scandir(folder) if e.is_dir(follow_symlinks=False))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _files(folder: Path) -> list[Path]:
    try:
        return sorted(Path(e.path) for e in os.scandir(folder) if e.is_file(follow_symlinks=False))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _rmdir(folder: Path) -> bool:
    try:
        folder.rmdir()
    except OSError:  # not empty (or gone): leave it
        return False
    return True


@contextmanager
def _exclusive(database: Database, data_dir: Path) -> Iterator[bool]:
    """One clean-up at a time: a PostgreSQL advisory lock (the whole cluster), else a lock file in
    data_dir (the processes sharing one SQLite database). Yields False when another run holds it."""
    if database.dialect == "postgresql":
        key = f"fimum:retention:{database.settings.database_schema or 'public'}"
        with database.engine.connect() as connection:
            mine = bool(
                connection.execute(
                    text("SELECT pg_try_advisory_lock(hashtextextended(:key, 0))"), {"key": key}
                ).scalar()
            )
            connection.commit()  # the lock belongs to the connection, not to a transaction
            try:
                yield mine
            finally:
                if mine:
                    try:
                        connection.execute(
                            text("SELECT pg_advisory_unlock(hashtextextended(:key, 0))"), {"key": key}
                        )
                        connection.commit()
                    except Exception:  # the connection died: so did its lock
                        log.warning("could not release the retention lock", exc_info=True)
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / ".retention.lock", "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            mine = False
        else:
            mine = True
        try:
            yield mine
        finally:
            if mine:
                fcntl.flock(handle, fcntl.LOCK_UN)


class CleanupSchedule:
    """Embedded mode: a clean-up shortly after start, then every `interval_s`, in a thread (the
    event loop never waits on it). `stop()` ends a running clean-up after its current batch."""

    def __init__(
        self,
        database: Database,
        store: ImageStore,
        interval_s: float,
        *,
        first_delay_s: float = FIRST_RUN_DELAY_S,
    ) -> None:
        self._db, self._store = database, store
        self._interval = interval_s
        self._first_delay = min(interval_s, first_delay_s)
        self._stop = threading.Event()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.last: CleanupReport | None = None

    @staticmethod
    def wanted(settings: Settings) -> bool:
        return settings.cleanup_interval_s > 0 and ttl_of(settings) > 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="image-retention")

    async def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def _loop(self) -> None:
        delay = self._first_delay
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
                return  # stopping
            except TimeoutError:
                pass
            try:
                self.last = await asyncio.to_thread(run_cleanup, self._db, self._store, stop=self._stop)
            except Exception:
                log.exception("the retention clean-up failed; it runs again at the next interval")
            delay = self._interval
