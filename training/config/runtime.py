"""Options of where and how any stage runs (device, precision, threads, seed); torch-free."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from training.config.base import opt

Device = Literal["auto", "cpu", "cuda"]
Precision = Literal["auto", "fp32", "bf16"]


@dataclass(frozen=True, kw_only=True)
class RuntimeConfig:
    """Where and how a stage runs; every stage config but init-tiny's inherits it."""

    device: Device = opt("auto", "where to run; auto picks CUDA when available")
    precision: Precision = opt("auto", "auto: bf16 autocast on a GPU that supports it, fp32 on CPU")
    tf32: bool = opt(True, "allow TF32 matmuls on Ampere+ GPUs")
    num_threads: int = opt(0, "torch CPU threads (0: torch default)")
    trust_remote_code: bool = opt(False, "allow custom modelling code shipped with a model directory")
    seed: int = opt(42, "random seed for initialisation, prompt order and sampling")
