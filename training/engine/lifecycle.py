"""The one wrapper every stage runs inside: ``started`` ... ``completed`` | ``failed`` (torch-free).

Every stage (trainers, ``generate``, ``evaluate``, ``init-tiny``) brackets its work with a
:class:`StageRun`, so the worker tailing ``events.jsonl`` always sees how a run ended::

    with StageRun.open(cfg.output_dir, "generate") as run:
        ...  # run.events.progress(...), run.events.metric(...)
        run.done_message = "generated 24 responses"

* entering writes ``status=started``;
* :meth:`StageRun.resumed` writes ``status=resumed`` with the step and checkpoint a run continues from
  (after ``started``: the step is known only once the checkpoint is found);
* leaving normally writes ``status=completed``; leaving with any exception (a user error that the
  CLI turns into exit 2, an unexpected one that becomes exit 1, or Ctrl-C) writes ``status=failed``
  with ``error`` = the exception's class name and ``message`` = the one line the CLI prints
  (:func:`training.errors.one_line`), then re-raises. A hard kill (SIGKILL, ``os._exit``) writes
  nothing: the worker reads a missing final status as a crash.

Both final events carry ``step`` when the stage has one (the optimizer step reached). Stages that do
not train report :meth:`StageRun.progress` in their own units (``generate``: prompts answered;
``evaluate``: answers of both corners), with ``epoch`` 0.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from training.errors import one_line
from training.events import EventWriter


class StageRun:
    """Brackets one run of a stage in its events file; see the module docstring."""

    def __init__(self, events: EventWriter, step: Callable[[], int] | None = None) -> None:
        self.events = events
        self.done_message = f"{events.stage} completed"
        self._step = step
        self._started = time.monotonic()

    @classmethod
    def open(cls, output_dir: str | Path, stage: str, *, enabled: bool = True) -> StageRun:
        """A run writing ``<output_dir>/events.jsonl`` (created if needed; a resumed run appends)."""
        return cls(EventWriter(output_dir, stage, enabled=enabled))

    def _where(self) -> dict[str, int]:
        return {} if self._step is None else {"step": self._step()}

    def resumed(self, step: int, checkpoint: Path) -> None:
        self.events.status("resumed", f"resumed from {checkpoint.name}", step=step)

    def progress(self, done: int, total: int) -> None:
        """Progress of a stage that does not train (``epoch`` 0): ``done`` of ``total`` work units."""
        elapsed = time.monotonic() - self._started
        eta = elapsed / done * (total - done) if done else None
        self.events.progress(done, total, 0.0, eta)

    def counter(self, total: int) -> Callable[[int], None]:
        """A callback adding ``n`` done units and reporting progress towards ``total``."""
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            self.progress(done, total)

        return advance

    def __enter__(self) -> StageRun:
        self._started = time.monotonic()
        self.events.status("started", f"{self.events.stage} started")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            if exc is None:
                self.events.status("completed", self.done_message, **self._where())
            else:
                self.events.status("failed", one_line(exc), error=type(exc).__name__, **self._where())
        finally:
            self.events.close()
