"""Estimated GPU memory of a run's model states per GPU, per ZeRO stage and offload (issue 12).

Bytes per parameter Ψ on each of N GPUs, bf16 mixed precision as the GPU path trains (DeepSpeed's
own accounting, ``estimate_zero2/3_model_states_mem_needs``, which the tests check against):

=====  ==============  ===============  ==================================  ==================
stage  16-bit weights  16-bit grads     fp32 grads + master + Adam m, v     gather buffer
=====  ==============  ===============  ==================================  ==================
0      2               2                16                                  -
1      2               2                16 / N                              -
2      2               2 / N            16 / N                              -
3      2 / N           (not counted)    16 / N                              4 × largest module
=====  ==============  ===============  ==================================  ==================

(DeepSpeed's ZeRO-3 estimate, 18/N + 4·largest, leaves the 16-bit gradient partition out; so
does this one, to stay comparable.) With optimizer offload the fp32 states (and the ZeRO-2/3
gradient partitions) live in host memory; with ``all`` (ZeRO-3 only) the 16-bit weights too.
Frozen networks hold 2 bytes per parameter, or 2/N plus a gather buffer under ZeRO-3 (only the
buffer with parameter offload). Under ZeRO-3 the rollout gathers the whole actor once (2 bytes per
parameter, transiently). Activations, the KV cache and the CUDA context are not estimated:
``headroom`` keeps a share of each GPU for them.
"""

from __future__ import annotations

from dataclasses import dataclass

# Cheapest first: less communication and no host round trips before more of either.
SETTINGS: tuple[tuple[int, str], ...] = (
    (0, "none"),
    (1, "none"),
    (2, "none"),
    (3, "none"),
    (1, "optimizer"),
    (2, "optimizer"),
    (3, "optimizer"),
    (3, "all"),
)


@dataclass(frozen=True)
class Network:
    name: str
    params: int
    largest_module: int
    trained: bool


@dataclass(frozen=True)
class NetworkMemory:
    """Bytes per GPU: ``model`` = weights + gradients + gather buffer; ``optimizer`` = fp32 states."""

    model: int
    optimizer: int
    host: int  # bytes this network puts in host memory per GPU (offload)


def trained_memory(params: int, largest: int, *, stage: int, offload: str, gpus: int) -> NetworkMemory:
    psi = params
    off_opt, off_param = offload in ("optimizer", "all"), offload == "all"
    if stage == 3:
        weights, gather = (0 if off_param else 2 * psi // gpus), 4 * largest
    else:
        weights, gather = 2 * psi, 0
    grads16 = {0: 2 * psi, 1: 2 * psi, 2: 2 * psi // gpus}.get(stage, 0)
    states = 16 * psi if stage == 0 else 16 * psi // gpus
    host = 0
    if off_opt:  # the fp32 states and the gradient partitions go to the host
        host, states = states + (grads16 if stage >= 2 else 0), 0
        grads16 = grads16 if stage < 2 else 0
    if off_param:
        host += 2 * psi // gpus
    return NetworkMemory(model=weights + grads16 + gather, optimizer=states, host=host)


def frozen_memory(params: int, largest: int, *, stage: int, offload: str, gpus: int) -> NetworkMemory:
    if stage != 3:
        return NetworkMemory(model=2 * params, optimizer=0, host=0)
    if offload == "all":
        return NetworkMemory(model=4 * largest, optimizer=0, host=2 * params // gpus)
    return NetworkMemory(model=2 * params // gpus + 4 * largest, optimizer=0, host=0)


@dataclass(frozen=True)
class SettingPlan:
    stage: int
    offload: str
    networks: dict[str, NetworkMemory]
    rollout_gather: int  # the actor gathered for generation under ZeRO-3

    @property
    def optimizer(self) -> int:
        return sum(m.optimizer for m in self.networks.values())

    @property
    def total(self) -> int:
        return sum(m.model + m.optimizer for m in self.networks.values()) + self.rollout_gather

    @property
    def host_per_gpu(self) -> int:
        return sum(m.host for m in self.networks.values())


def plan_setting(networks: list[Network], *, stage: int, offload: str, gpus: int) -> SettingPlan:
    out: dict[str, NetworkMemory] = {}
    gather = 0
    for net in networks:
        estimate = trained_memory if net.trained else frozen_memory
        out[net.name] = estimate(net.params, net.largest_module, stage=stage, offload=offload, gpus=gpus)
        if net.name in ("actor", "policy") and stage == 3:
            gather = 2 * net.params
    return SettingPlan(stage, offload, out, gather)


def plan_all(networks: list[Network], gpus: int) -> list[SettingPlan]:
    return [plan_setting(networks, stage=s, offload=o, gpus=gpus) for s, o in SETTINGS]


def recommend(plans: list[SettingPlan], usable_bytes: float) -> SettingPlan | None:
    """The first (cheapest) setting whose model states fit in ``usable_bytes`` per GPU."""
    return next((p for p in plans if p.total <= usable_bytes), None)


def parse_size(text: str) -> float:
    """'80GB', '80G', '80GiB', '141 GB' -> bytes (GB and GiB both as 2**30: GPU memory is quoted so)."""
    cleaned = text.strip().upper().replace(" ", "").removesuffix("IB").removesuffix("B")
    units = {"T": 2**40, "G": 2**30, "M": 2**20}
    factor = units.get(cleaned[-1:])
    number = cleaned[:-1] if factor else cleaned
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"unreadable memory size {text!r} (use e.g. 80GB)") from None
    if value <= 0:
        raise ValueError(f"memory size must be positive, got {text!r}")
    return value * (factor or 2**30)
