"""Loading and saving models from local HF directories (never the hub, never pickle)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, PreTrainedModel

from training.errors import ConfigError
from training.models.normalizer import NormalizerType, ScoreType
from training.models.score_model import SCORE_HEAD_FILE, ScoreModel

logger = logging.getLogger(__name__)


def check_model_dir(path: str | Path) -> Path:
    """``path`` as a Path if it is a local HF model directory, else one clear ConfigError."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(
            f"model directory {str(p)!r} does not exist; pass a local HF model directory "
            "(models are never downloaded)"
        )
    if not (p / "config.json").is_file():
        raise ConfigError(f"{p} is not a Hugging Face model directory (no config.json)")
    return p


def _first_corrupt_file(directory: Path) -> tuple[Path, str] | None:
    """The first weight file of ``directory`` whose safetensors header cannot be read, and why."""
    head = directory / SCORE_HEAD_FILE
    for file in [*_weight_files(directory), *([head] if head.is_file() else [])]:
        try:
            with safe_open(str(file), framework="pt"):
                pass
        except SafetensorError as exc:
            return file, str(exc)
    return None


@contextmanager
def readable_weights(directory: Path) -> Iterator[None]:
    """Turn a corrupt weight file into one line naming it (a user error), not a traceback: the
    safetensors error itself does not say which file of the directory is broken."""
    try:
        yield
    except SafetensorError as exc:
        file, reason = _first_corrupt_file(directory) or (directory, str(exc))
        raise ConfigError(f"{file} is not a valid safetensors file: {reason}") from None


def load_causal_lm(
    path: str | Path, *, dtype: torch.dtype = torch.float32, trust_remote_code: bool = False
) -> PreTrainedModel:
    p = check_model_dir(path)
    with readable_weights(p):
        return AutoModelForCausalLM.from_pretrained(p, dtype=dtype, trust_remote_code=trust_remote_code)


def _weight_files(path: Path) -> list[Path]:
    index = path / "model.safetensors.index.json"
    if index.is_file():
        names = set(json.loads(index.read_text())["weight_map"].values())
        return [path / name for name in sorted(names)]
    single = path / "model.safetensors"
    return [single] if single.is_file() else []


def _seqcls_head(path: Path, hidden: int) -> dict[str, torch.Tensor] | None:
    """The ``score`` head of an HF *ForSequenceClassification(num_labels=1) checkpoint, if any."""
    for file in _weight_files(path):
        with safe_open(str(file), framework="pt") as fh:
            keys = set(fh.keys())
            if "score.weight" in keys:
                weight = fh.get_tensor("score.weight")
                if weight.shape == (1, hidden):
                    bias = fh.get_tensor("score.bias") if "score.bias" in keys else torch.zeros(1)
                    return {"weight": weight, "bias": bias}
    return None


def load_score_model(
    path: str | Path,
    *,
    score_type: ScoreType | None = None,
    normalizer_type: NormalizerType | None = None,
    momentum: float | None = None,
    do_normalize: bool | None = None,
    dtype: torch.dtype = torch.float32,
    trust_remote_code: bool = False,
) -> ScoreModel:
    """Load a score model from a local directory.

    A saved score model comes back with its head and normalizer statistics. Any other HF model
    directory (a causal LM such as the SFT output, or a base model) gives its backbone with a
    freshly initialised head (spec §2.1); a ``*ForSequenceClassification`` directory with one label
    keeps its ``score`` weights. Keyword arguments override the saved settings (e.g.
    ``score_type="critic"`` to initialise a critic from a reward model, spec §5.1).
    """
    p = check_model_dir(path)
    with readable_weights(p):
        return _load_score_model(
            p, score_type, normalizer_type, momentum, do_normalize, dtype, trust_remote_code
        )


def _load_score_model(
    p: Path,
    score_type: ScoreType | None,
    normalizer_type: NormalizerType | None,
    momentum: float | None,
    do_normalize: bool | None,
    dtype: torch.dtype,
    trust_remote_code: bool,
) -> ScoreModel:
    config = AutoConfig.from_pretrained(p, trust_remote_code=trust_remote_code)
    saved = dict(getattr(config, "score_model", None) or {})
    backbone = AutoModel.from_pretrained(p, dtype=dtype, trust_remote_code=trust_remote_code)
    if hasattr(backbone.config, "score_model"):
        del backbone.config.score_model
    model = ScoreModel(
        backbone,
        score_type=score_type or saved.get("score_type", "reward"),
        score_dim=int(saved.get("score_dim", 1)),
        normalizer_type=normalizer_type or saved.get("normalizer_type", "none"),
        momentum=momentum if momentum is not None else float(saved.get("momentum", 0.9)),
        do_normalize=do_normalize if do_normalize is not None else bool(saved.get("do_normalize", False)),
    )
    head_file = p / SCORE_HEAD_FILE
    head = load_file(str(head_file)) if head_file.is_file() else _seqcls_head(p, config.hidden_size)
    if head is not None:
        with torch.no_grad():
            model.score_head.weight.copy_(head["weight"])
            model.score_head.bias.copy_(head["bias"])
        if saved:
            model.normalizer.load_stats(saved)
    else:
        logger.info("no score head in %s: initialising a new one", p)
    return model


def save_score_model(
    model: ScoreModel, path: str | Path, state_dict: dict[str, torch.Tensor] | None = None
) -> None:
    """Save backbone (HF layout), head and score settings. ``state_dict`` overrides the module's
    own (e.g. a gathered ZeRO-3 state dict with ``backbone.``/``score_head.`` prefixes)."""
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    state = state_dict if state_dict is not None else model.state_dict()
    backbone_state = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
    head = {
        "weight": state["score_head.weight"].detach().cpu().contiguous(),
        "bias": state["score_head.bias"].detach().cpu().contiguous(),
    }
    model.backbone.config.score_model = model.score_settings()
    try:
        model.backbone.save_pretrained(out, state_dict=backbone_state)
    finally:
        del model.backbone.config.score_model
    save_file(head, str(out / SCORE_HEAD_FILE), metadata={"format": "pt"})
