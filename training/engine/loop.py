"""What the supervised :class:`~training.engine.trainer.Trainer` and the policy trainer
(:class:`~training.algorithms.rl_trainer.PolicyTrainer`) share: the run lifecycle, choosing and
loading the checkpoint to resume from, and writing a checkpoint.

A subclass sets ``config``, ``stage`` and calls :meth:`CheckpointedRun.init_run`; it implements
``prepare``/``train``/``finish``, the :attr:`step` it has reached and :meth:`load_checkpoint` (its
networks, position and own state). ``run`` = prepare -> resume -> train -> finish, bracketed by the
``started``/``resumed``/``completed``/``failed`` events of :class:`~training.engine.lifecycle.StageRun`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from training.config import config_to_dict
from training.engine.checkpoint import CheckpointManager
from training.engine.lifecycle import StageRun
from training.engine.rng import capture_rng, restore_rng
from training.engine.serialization import save_state
from training.errors import ConfigError
from training.events import EventWriter

logger = logging.getLogger(__name__)
TRAINER_STATE = "trainer_state"


class RunConfig(Protocol):
    """The options of a trainer's config this module reads."""

    @property
    def output_dir(self) -> str: ...
    @property
    def resume(self) -> str: ...
    @property
    def save_total_limit(self) -> int: ...


class CheckpointedRun:
    config: Any  # the stage's config (a RunConfig); subclasses narrow it
    stage: str
    tensorboard: Any

    def init_run(self, *, main: bool = True) -> None:
        """Events, checkpoints and history under ``config.output_dir`` (``main``: this rank writes)."""
        self.output_dir = Path(self.config.output_dir)
        self.events = EventWriter(self.output_dir, self.stage, enabled=main)
        self.lifecycle = StageRun(self.events, step=lambda: self.step)
        self.checkpoints = CheckpointManager(
            self.output_dir / "checkpoints", keep=self.config.save_total_limit
        )
        self.history: dict[str, float] = {}

    # ------------------------------------------------------- subclass hooks
    @property
    def step(self) -> int:
        """Optimizer steps done."""
        raise NotImplementedError

    def prepare(self) -> None:
        raise NotImplementedError

    def train(self) -> None:
        raise NotImplementedError

    def finish(self) -> dict[str, float]:
        raise NotImplementedError

    def load_checkpoint(self, path: Path) -> dict[str, Any]:
        """Load the networks and the subclass's own state from ``path``; return the trainer state."""
        raise NotImplementedError

    # ---------------------------------------------------------------- resume
    def checkpoint_to_resume(self) -> Path | None:
        """The checkpoint ``config.resume`` names: none for 'never' or a fresh 'auto' run."""
        choice = self.config.resume
        if choice == "never":
            return None
        self.checkpoints.clean_stale()
        path = self.checkpoints.latest() if choice == "auto" else Path(choice)
        if path is None:
            return None
        if not (path / "COMPLETE").is_file():
            raise ConfigError(f"resume checkpoint {path} does not exist or is incomplete")
        return path

    def resume(self) -> None:
        path = self.checkpoint_to_resume()
        if path is None:
            return
        state = self.load_checkpoint(path)
        self.history.update(state["history"])
        restore_rng(state["rng"])  # last: loading must not consume randomness after the restore
        logger.info("resumed from %s at step %d", path, self.step)
        self.lifecycle.resumed(self.step, path)

    # ------------------------------------------------------------------ save
    def write_checkpoint(
        self, position: dict[str, Any], save_networks: Callable[[Path], None], **extra: Any
    ) -> Path:
        """An atomic checkpoint of this step: the networks plus position, history, RNG, ``extra``."""
        state = {
            "position": position,
            "history": self.history,
            "rng": capture_rng(),
            **extra,
            "config": config_to_dict(self.config),
        }

        def write(tmp: Path) -> None:
            save_networks(tmp)
            save_state(tmp, TRAINER_STATE, state)

        path = self.checkpoints.save(self.step, write)
        self.events.checkpoint(self.step, str(path.relative_to(self.output_dir)))
        return path

    # ------------------------------------------------------------------- run
    def run(self) -> dict[str, float]:
        """Prepare, resume, train and finish inside the stage's status events."""
        with self.lifecycle:
            try:
                self.prepare()
                self.resume()
                self.train()
                summary = self.finish()
            finally:
                if hasattr(self, "tensorboard"):
                    self.tensorboard.close()
        return summary


CRASH_ENV = "TRAINING_TEST_CRASH_AFTER_STEP"  # test hook: hard exit once this optimizer step is done


def crash_if_asked(before: int, after: int) -> None:
    """Exit hard, like a kill, when the steps ``(before, after]`` just done include ``CRASH_ENV``."""
    value = os.environ.get(CRASH_ENV)
    if value and before < int(value) <= after:
        logger.warning("%s=%s: exiting hard for a resume test", CRASH_ENV, value)
        os._exit(75)
