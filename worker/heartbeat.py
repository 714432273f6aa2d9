"""The heartbeat thread of a running job: renews the lease, and stops the stage when it cannot.

Renewal fails when the job was reaped (the lease expired and the reaper handed it on), cancelled,
or moved on in any other way; and renewal cannot even be tried while the database is unreachable.
In both cases the worker must stop the subprocess before anyone else resumes the job in the same
directory: at once when the lease is known to be gone, and after `job_self_stop_seconds` without a
successful renewal otherwise, which is shorter than the lease the reaper waits for.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from backend.config import Settings
from backend.services.jobs import Lease, renew_lease

logger = logging.getLogger(__name__)


class Heartbeat(threading.Thread):
    def __init__(
        self,
        *,
        lease: Lease,
        settings: Settings,
        sessions: sessionmaker[Session],
        on_lost: Callable[[str], None],
    ) -> None:
        super().__init__(name=f"heartbeat-job-{lease.job_id}", daemon=True)
        self.lease, self.settings, self.sessions, self.on_lost = lease, settings, sessions, on_lost
        self.lost = threading.Event()
        self.reason = ""
        self._stop_requested = threading.Event()

    def stop(self) -> None:
        self._stop_requested.set()

    def _lose(self, reason: str) -> None:
        self.reason = reason
        self.lost.set()
        logger.warning("job %s: %s; stopping its process group", self.lease.job_id, reason)
        self.on_lost(reason)

    def run(self) -> None:
        last_ok = time.monotonic()
        while not self._stop_requested.wait(self.settings.job_heartbeat_seconds):
            try:
                with self.sessions() as session:
                    alive = renew_lease(
                        session=session, lease=self.lease, lease_seconds=self.settings.job_lease_seconds
                    )
            except Exception:  # the database is down: keep trying until the self-stop timeout
                logger.exception("job %s: lease renewal failed", self.lease.job_id)
                if time.monotonic() - last_ok >= self.settings.job_self_stop_seconds:
                    self._lose(f"could not renew the lease for {self.settings.job_self_stop_seconds:g}s")
                    return
                continue
            if not alive:
                self._lose("the lease is gone (cancelled, or reaped and handed on)")
                return
            last_ok = time.monotonic()
