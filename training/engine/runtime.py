"""Process setup for a stage: device, threads, precision and logging."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from training.config.runtime import RuntimeConfig
from training.errors import ConfigError

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def resolve_device(config: RuntimeConfig) -> torch.device:
    if config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ConfigError("device is 'cuda' but no CUDA device is available")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def use_bf16(config: RuntimeConfig, device: torch.device) -> bool:
    """bf16 autocast only on a GPU that supports it (auto), or when explicitly asked on a GPU."""
    if config.precision == "fp32" or device.type != "cuda":
        if config.precision == "bf16" and device.type != "cuda":
            raise ConfigError("precision 'bf16' needs a CUDA device; use 'auto' or 'fp32' on CPU")
        return False
    return torch.cuda.is_bf16_supported()


def configure_torch(config: RuntimeConfig, device: torch.device) -> None:
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = config.tf32
        torch.backends.cudnn.allow_tf32 = config.tf32


def add_file_logging(output_dir: Path) -> logging.Handler:
    """Also log to ``<output_dir>/train.log`` (appending across resumes)."""
    handler = logging.FileHandler(output_dir / "train.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.getLogger().addHandler(handler)
    return handler


def quiet_libraries() -> None:
    """Silence the HF load reports and progress bars that would drown our own log."""
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
