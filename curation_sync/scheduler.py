"""Periodic polls on APScheduler 3.x: one job per watched folder's project.

Each poll job lists the project's tasks (one request per page), notices new,
changed, completed and cancelled tasks, checks record set versions, and runs the
pulls that became due (`SyncEngine.poll`). A second, shorter job per folder retries
the outbox (`SyncEngine.resume_pending`), so an edit saved while Synapse was down is
pushed soon after it answers again, without waiting for the next poll.

Jobs run in APScheduler's worker threads, which have no event loop, as the adapter
requires. A job never overlaps itself (`max_instances=1`), missed runs collapse into
one (`coalesce`), and a failing run logs one warning and runs again next time.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from curation_sync.errors import CurationSyncError
from curation_sync.sync import SyncEngine

logger = logging.getLogger(__name__)

DEFAULT_RETRY_INTERVAL_SECONDS = 30.0
WORKER_THREADS = 3


def run_job(name: str, action: Callable[[], Any]) -> bool:
    """Run one scheduled action; log its failure and keep the scheduler alive.

    Returns whether it succeeded. A known failure (Synapse unreachable, a bad
    workbook) is one warning; anything else is logged with its traceback.
    """
    try:
        action()
    except CurationSyncError as error:
        logger.warning(
            "%s failed (%s); it runs again at its next interval", name, error
        )
        return False
    except Exception:
        logger.exception(
            "%s failed unexpectedly; it runs again at its next interval", name
        )
        return False
    return True


class Poller:
    """Polls every watched folder's project on its own interval.

    Args:
        jobs: (poll interval in seconds, engine) for each watched folder.
        retry_interval_seconds: how often each folder's outbox is retried.
    """

    def __init__(
        self,
        jobs: Sequence[tuple[float, SyncEngine]],
        *,
        retry_interval_seconds: float = DEFAULT_RETRY_INTERVAL_SECONDS,
    ) -> None:
        self.jobs = list(jobs)
        self.retry_interval_seconds = retry_interval_seconds
        self._scheduler: BackgroundScheduler | None = None

    def __repr__(self) -> str:
        return f"Poller({len(self.jobs)} folders, running={self.is_running})"

    @property
    def is_running(self) -> bool:
        """Whether the scheduler has been started and not stopped."""
        return self._scheduler is not None

    def start(self) -> None:
        """Start the scheduler thread; the first polls run one interval from now."""
        if self._scheduler is not None:
            return
        scheduler = BackgroundScheduler(
            timezone=dt.timezone.utc,
            executors={"default": ThreadPoolExecutor(WORKER_THREADS)},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": 30,
            },
        )
        for index, (interval, engine) in enumerate(self.jobs):
            project = engine.ctx.settings.project_id
            scheduler.add_job(
                run_job,
                "interval",
                seconds=interval,
                args=[
                    f"The poll of {project} for {engine.ctx.settings.folder}",
                    engine.poll,
                ],
                id=f"poll-{index}-{project}",
            )
            scheduler.add_job(
                run_job,
                "interval",
                seconds=self.retry_interval_seconds,
                args=[
                    f"The outbox retry of {engine.ctx.settings.folder}",
                    engine.resume_pending,
                ],
                id=f"outbox-{index}",
            )
        scheduler.start()
        self._scheduler = scheduler
        logger.debug("Scheduled polls for %d folders", len(self.jobs))

    def run_now(self) -> None:
        """Make every poll job due immediately (e.g. after the network came back)."""
        if self._scheduler is None:
            return
        now = dt.datetime.now(dt.timezone.utc)
        for job in self._scheduler.get_jobs():
            job.modify(next_run_time=now)

    def stop(self) -> None:
        """Stop the scheduler, waiting for running jobs to finish."""
        if self._scheduler is None:
            return
        self._scheduler.shutdown(wait=True)
        self._scheduler = None
