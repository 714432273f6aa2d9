"""Structured training events, one JSON object per line in ``<output_dir>/events.jsonl`` (torch-free).

The platform's worker tails this file and ingests every event into its database, so the schema is
a contract. Every stage writes it, into the directory named by its ``Stage.output_field``
(``output_dir``; ``out`` for ``init-tiny``), through :class:`training.engine.lifecycle.StageRun`.

Lifecycle, per process run of ``python -m training STAGE --config run.json``:

* the first event of a run is ``status=started``; a run that continues from a checkpoint then
  writes ``status=resumed`` with the ``step`` it resumed from (re-running the same command in the
  same output directory with ``resume`` = ``"auto"``, the default, resumes from the latest complete
  checkpoint; a re-run appends to the same file and continues ``seq``);
* the last event is ``status=completed`` (exit status 0) or ``status=failed`` with ``error`` (the
  exception class) and ``message`` (the one line the CLI prints on stderr) for a user error
  (exit 2) or an unexpected one (exit 1, traceback on stderr);
* a process killed hard (SIGKILL, OOM) ends without a final status: treat that as a crash.
  An error found before the output directory is known (a bad option, an unreadable run.json)
  exits 2 without writing events.
* ``progress`` events come at every logged step of a trainer, and after every generation batch of
  ``generate`` (``step`` = prompts answered, ``total_steps`` = prompts) and ``evaluate`` (answers
  of both corners, so twice the prompts); their ``epoch`` is 0 for stages that do not train.

Schema version 1:

Common fields, on every event:
    ``v``      int, schema version (1)
    ``seq``    int, strictly increasing within the file (a resumed run continues the numbering)
    ``time``   float, Unix time in seconds
    ``stage``  str, the stage name (``"sft"``, ``"reward"``, ``"cost"``, ...)
    ``type``   one of ``"status"``, ``"progress"``, ``"metric"``, ``"checkpoint"``

``type == "status"``: lifecycle.
    ``status``   ``"started"`` | ``"resumed"`` | ``"completed"`` | ``"failed"``
    ``message``  str, human-readable
    ``step``     int, optional: the step a run resumed from, or failed/completed at
    ``error``    str, optional (``"failed"`` only): the error class, e.g. ``"ConfigError"``
``type == "progress"``: where the run is.
    ``step``, ``total_steps``  int, optimizer steps done / planned
    ``epoch``     float, fractional epoch
    ``fraction``  float in [0, 1]
    ``eta_s``     float or null, estimated seconds left
``type == "metric"``: scalar metrics at an optimizer step.
    ``step``     int
    ``metrics``  object of ``"<split>/<name>": float | null`` (``train/loss``, ``eval/accuracy``,
                 ``data/dropped_inconsistent``, ...). Non-finite values are written as null.
``type == "checkpoint"``: a checkpoint became durable (its COMPLETE marker is on disk).
    ``step``   int
    ``path``   str, relative to the output directory
    ``final``  bool, true for the final exported model

A process killed mid-write can leave a truncated last line; :func:`read_events` skips it.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import IO, Any, Literal

SCHEMA_VERSION = 1
EVENTS_FILE = "events.jsonl"
EventType = Literal["status", "progress", "metric", "checkpoint"]
Status = Literal["started", "resumed", "completed", "failed"]


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def read_events(path: str | Path) -> list[dict[str, Any]]:
    """All complete events of an events file, in order (a torn last line is ignored)."""
    p = Path(path)
    if not p.exists():
        return []
    events = []
    for line in p.read_text(encoding="utf-8").splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(event, dict) and event.get("v") == SCHEMA_VERSION:
            events.append(event)
    return events


class EventWriter:
    """Append-only writer of one run's events. Only the main process should hold an enabled one."""

    def __init__(self, output_dir: str | Path, stage: str, *, enabled: bool = True) -> None:
        self.stage = stage
        self.enabled = enabled
        self.path = Path(output_dir) / EVENTS_FILE
        self._fh: IO[str] | None = None
        self._seq = 0
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            previous = read_events(self.path)
            self._seq = previous[-1]["seq"] + 1 if previous else 0
            self._fh = self.path.open("a", encoding="utf-8")

    def emit(self, type_: EventType, *, durable: bool = False, **fields: Any) -> None:
        if self._fh is None:
            return
        event = {
            "v": SCHEMA_VERSION,
            "seq": self._seq,
            "time": time.time(),
            "stage": self.stage,
            "type": type_,
            **_clean(fields),
        }
        self._fh.write(json.dumps(event, allow_nan=False) + "\n")
        self._fh.flush()
        if durable:
            os.fsync(self._fh.fileno())
        self._seq += 1

    def status(self, status: Status, message: str, **extra: Any) -> None:
        self.emit("status", durable=True, status=status, message=message, **extra)

    def progress(self, step: int, total_steps: int, epoch: float, eta_s: float | None = None) -> None:
        fraction = min(1.0, step / total_steps) if total_steps else 0.0
        self.emit(
            "progress",
            step=step,
            total_steps=total_steps,
            epoch=round(epoch, 6),
            fraction=fraction,
            eta_s=eta_s,
        )

    def metric(self, step: int, metrics: dict[str, float]) -> None:
        self.emit("metric", step=step, metrics=dict(metrics))

    def checkpoint(self, step: int, path: str, final: bool = False) -> None:
        self.emit("checkpoint", durable=True, step=step, path=path, final=final)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
