"""Distributed helpers that are no-ops in a single process (1 CPU, or 1 GPU without a launcher)."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else int(os.environ.get("RANK", "0"))


def world_size() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def init_deepspeed_distributed() -> None:
    """Initialise the process group for DeepSpeed, launched or not.

    Under a launcher (``deepspeed``, ``torchrun``) the rank variables are set. A plain single
    process gets rank 0 of 1 on a free local port, so DeepSpeed does not fall back to MPI discovery.
    """
    if dist.is_available() and dist.is_initialized():
        return
    if "RANK" not in os.environ:
        os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1")
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(_free_port()))
    import deepspeed

    deepspeed.init_distributed()


def is_main_process() -> bool:
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    """Mean of ``value`` over ranks (returns ``value`` itself in one process)."""
    if not is_distributed():
        return value
    out = value.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / dist.get_world_size()


def all_reduce_sum(value: torch.Tensor) -> torch.Tensor:
    if not is_distributed():
        return value
    out = value.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def all_gather_cat(value: torch.Tensor) -> torch.Tensor:
    """Concatenate ``value`` (N_r, ...) from every rank along dim 0; sizes may differ per rank."""
    if not is_distributed():
        return value
    sizes = [torch.zeros(1, dtype=torch.long, device=value.device) for _ in range(world_size())]
    dist.all_gather(sizes, torch.tensor([value.shape[0]], device=value.device))
    longest = int(max(s.item() for s in sizes))
    padded = torch.zeros((longest, *value.shape[1:]), dtype=value.dtype, device=value.device)
    padded[: value.shape[0]] = value
    gathered = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(gathered, padded)
    return torch.cat([g[: int(s.item())] for g, s in zip(gathered, sizes, strict=True)], dim=0)


def _comm_device() -> torch.device:
    """NCCL only moves CUDA tensors; gloo (CPU runs) takes CPU ones."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def broadcast_float(value: float, src: int = 0) -> float:
    """``value`` as rank ``src`` holds it, on every rank (float64, so nothing is rounded)."""
    if not is_distributed():
        return value
    out = torch.tensor([value], dtype=torch.float64, device=_comm_device())
    dist.broadcast(out, src=src)
    return float(out.item())


def reduce_metrics(
    metrics: dict[str, float], *, sums: tuple[str, ...] = (), maxima: tuple[str, ...] = ()
) -> dict[str, float]:
    """Metrics of every rank combined: the mean over ranks, the sum for ``sums``, the max for
    ``maxima``. Every rank must pass the same keys (they are reduced in sorted order)."""
    if not is_distributed():
        return metrics
    keys = sorted(metrics)
    values = torch.tensor([metrics[k] for k in keys], dtype=torch.float64, device=_comm_device())
    summed, largest = values.clone(), values.clone()
    dist.all_reduce(summed, op=dist.ReduceOp.SUM)
    dist.all_reduce(largest, op=dist.ReduceOp.MAX)
    count = dist.get_world_size()
    out = {}
    for i, key in enumerate(keys):
        if key in maxima:
            out[key] = float(largest[i])
        elif key in sums:
            out[key] = float(summed[i])
        else:
            out[key] = float(summed[i]) / count
    return out
