"""``python -m training plan --config run.json --gpus N --gpu-memory 80GB``: the memory plan.

Prints, for every ZeRO stage and offload choice, the estimated memory per GPU of each network (its
16-bit weights, gradients and gather buffer), of the optimizer states and of the rollout's gathered
actor, the host memory offload needs, and recommends the cheapest setting that fits. Exit 0 with a
recommendation; exit 2 with one line when nothing fits (or the input is wrong). Torch-free: model
sizes come from each model directory's ``config.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from training.errors import ConfigError, UserError, one_line
from training.planning.memory import Network, SettingPlan, parse_size, plan_all, recommend
from training.planning.shapes import Shape, load_shape

GiB = 2**30
TRAINED = {
    "ppo-lag": ("actor", "reward_critic", "cost_critic"),
    "ppo": ("actor", "reward_critic"),
    "reward-shaping": ("actor", "reward_critic"),
    "dpo": ("policy",),
    "sft": ("policy",),
    "reward": ("score_model",),
    "cost": ("score_model",),
}
FROZEN = {
    "ppo-lag": ("reference", "reward_model", "cost_model"),
    "ppo": ("reference", "reward_model"),
    "reward-shaping": ("reference", "reward_model", "cost_model"),
    "dpo": ("reference",),
}


def infer_stage(config: dict[str, Any]) -> str:
    if "cost_model_name_or_path" in config:
        return "reward-shaping" if "nu" in config else "ppo-lag"
    if "reward_model_name_or_path" in config:
        return "ppo"
    if "scale_coeff" in config or "reference_model_name_or_path" in config:
        return "dpo"
    return "sft"


def _path(config: dict[str, Any], *keys: str) -> str:
    for key in keys:
        if config.get(key):
            return str(config[key])
    raise ConfigError(f"run.json needs {keys[-1]}")


def network_paths(stage: str, config: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """name -> (model directory, is a causal LM rather than a score model)."""
    actor = _path(config, "model_name_or_path")
    paths = {
        "actor": (actor, True),
        "policy": (actor, True),
        "score_model": (actor, False),
        "reference": (_path(config, "reference_model_name_or_path", "model_name_or_path"), True),
    }
    if stage in ("ppo-lag", "ppo", "reward-shaping"):
        rm = _path(config, "reward_model_name_or_path")
        paths["reward_model"] = (rm, False)
        paths["reward_critic"] = (config.get("reward_critic_model_name_or_path") or rm, False)
    if stage in ("ppo-lag", "reward-shaping"):
        cm = _path(config, "cost_model_name_or_path")
        paths["cost_model"] = (cm, False)
        paths["cost_critic"] = (config.get("cost_critic_model_name_or_path") or cm, False)
    return paths


def networks_of(stage: str, config: dict[str, Any]) -> list[Network]:
    paths = network_paths(stage, config)
    shapes: dict[str, Shape] = {}
    out = []
    for trained, names in ((True, TRAINED[stage]), (False, FROZEN.get(stage, ()))):
        for name in names:
            path, causal = paths[name]
            shape = shapes.setdefault(path, load_shape(path))
            params = shape.causal_lm() if causal else shape.score_model()
            out.append(Network(name, params, shape.largest_module(), trained))
    return out


def _say(text: str, *, error: bool = False) -> None:
    """This is a CLI: its table goes to stdout, its one-line refusal to stderr."""
    (sys.stderr if error else sys.stdout).write(text + "\n")


def _gb(value: float) -> str:
    return f"{value / GiB:.1f}"


def render(plans: list[SettingPlan], networks: list[Network], usable: float, best: SettingPlan | None) -> str:
    names = [n.name for n in networks]
    header = ["zero", "offload", *names, "optimizer", "rollout", "total/GPU", "host/GPU", "fits"]
    rows = [header]
    for plan in plans:
        rows.append(
            [
                str(plan.stage),
                plan.offload,
                *(_gb(plan.networks[n].model) for n in names),
                _gb(plan.optimizer),
                _gb(plan.rollout_gather),
                _gb(plan.total),
                _gb(plan.host_per_gpu),
                ("yes" if plan.total <= usable else "no") + (" <- recommended" if plan is best else ""),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training plan", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="the run's run.json")
    parser.add_argument("--gpus", type=int, required=True, help="GPUs in the run, all nodes together")
    parser.add_argument("--gpu-memory", required=True, help="memory of one GPU, e.g. 80GB")
    parser.add_argument(
        "--stage", choices=sorted(TRAINED), help="the stage (default: inferred from run.json)"
    )
    parser.add_argument(
        "--headroom",
        type=float,
        default=0.15,
        help="share of each GPU kept for activations, KV cache and the CUDA context (0.15)",
    )
    return parser.parse_args(argv)


def build_plan(args: argparse.Namespace) -> tuple[str, list[SettingPlan], list[Network], float]:
    if args.gpus < 1:
        raise ConfigError("--gpus must be at least 1")
    if not 0 <= args.headroom < 1:
        raise ConfigError("--headroom must lie in [0, 1)")
    try:
        memory = parse_size(args.gpu_memory)
        config = json.loads(Path(args.config).read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    stage = args.stage or infer_stage(config)
    networks = networks_of(stage, config)
    return stage, plan_all(networks, args.gpus), networks, memory * (1 - args.headroom)


def main(argv: list[str]) -> int:
    try:
        args = parse_args(argv)
        stage, plans, networks, usable = build_plan(args)
    except (UserError, OSError) as exc:
        _say(f"error: {one_line(exc)}", error=True)
        return 2
    best = recommend(plans, usable)
    total = sum(n.params for n in networks) / 1e9
    _say(
        f"{stage}: {len(networks)} networks, {total:.2f}B parameters, {args.gpus} GPUs of "
        f"{args.gpu_memory} ({_gb(usable)} GiB usable each after {args.headroom:.0%} headroom); GiB per GPU:"
    )
    _say(render(plans, networks, usable, best))
    if best is None:
        smallest = min(p.total for p in plans)
        _say(
            f"error: no ZeRO stage or offload fits {stage} on {args.gpus} x {args.gpu_memory}: the "
            f"smallest plan needs {_gb(smallest)} GiB per GPU of {_gb(usable)} usable; add GPUs",
            error=True,
        )
        return 2
    _say(f"recommended: zero_stage={best.stage} offload={best.offload} ({_gb(best.total)} GiB per GPU)")
    return 0
