"""One PPO-Lag step on six bf16 ~0.5B Qwen2.5-shaped random models on a GPU (issue 4, item 10).

    python benchmarks/gpu_ppo_lag_step.py           # on the device machine: about 2 minutes on an H100
    python benchmarks/gpu_ppo_lag_step.py --tiny    # the same code path on CPU with tiny models (smoke test)

The six networks of Safe RLHF (actor, reference, reward model, cost model, reward critic, cost
critic), Qwen2.5-0.5B-shaped (24 layers, hidden 896, 14 query / 2 KV heads, vocab 151,936), are
random-initialised on the device with a fixed seed: no weights travel. Frozen networks are bf16;
trained ones keep fp32 weights under bf16 autocast, and the actor samples from a bf16 copy. Each
step goes through ``PolicyTrainer.train_on_batch``, the code path of ``python -m training ppo-lag``:
B prompts of about p tokens, r new tokens each, split into micro-batches for the updates.

Reported (docs/design/training_anchors.md §4.1, §4.4): time per phase, generation tokens/s against the HBM
roofline (bf16 weights plus KV cache read once per decode step, at the copy bandwidth measured
here and at the datasheet bandwidth), MBU, FLOPs and MFU per phase and per step against 989 TFLOP/s
and against a bf16 matmul peak measured here. Self-checks: finite losses, the bf16 KV-cache
log-probs agree with a full forward pass, λ moves towards the constraint, every trained network
changed. JSON goes to ``$OUT/gpu_ppo_lag_step.json`` when ``OUT`` is set. Last line:
``gpu_ppo_lag_gen_tokens_per_s=<x> gpu_ppo_lag_gen_roofline_fraction=<x> gpu_ppo_lag_step_s=<x>
gpu_ppo_lag_step_mfu=<x> checks_passed=<true|false>``.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

PEAK_BF16 = 989e12  # H100 SXM dense bf16, the MFU denominator of verl and the papers
DATASHEET_BW = {"H100": 3.35e12, "H200": 4.8e12}
PAD, EOS = 0, 1


@dataclass(frozen=True)
class Shape:
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    vocab: int
    batch: int
    train_batch: int
    prompt: int
    response: int

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


QWEN_05B = Shape(24, 896, 4864, 14, 2, 151936, batch=64, train_batch=16, prompt=256, response=256)
TINY = Shape(2, 64, 128, 4, 2, 512, batch=8, train_batch=4, prompt=16, response=16)


# --------------------------------------------------------------------- models
def qwen_config(shape: Shape) -> Any:
    from transformers import Qwen2Config

    return Qwen2Config(
        vocab_size=shape.vocab,
        hidden_size=shape.hidden,
        intermediate_size=shape.intermediate,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.kv_heads,
        max_position_embeddings=4096,
        rope_theta=1e6,
        tie_word_embeddings=True,
        rms_norm_eps=1e-6,
        pad_token_id=PAD,
        eos_token_id=EOS,
        bos_token_id=EOS,
        attn_implementation="sdpa",
    )


def build_trainer(shape: Shape, device: torch.device, bf16: bool, args: argparse.Namespace) -> Any:
    """A PolicyTrainer whose six networks are built in memory instead of loaded from disk."""
    from transformers import AutoModel, AutoModelForCausalLM

    from training.algorithms.policy_models import PolicyModels, RolloutCopy, actor_settings, critic_settings
    from training.algorithms.ppo_lagrangian import build_objective
    from training.algorithms.rl_trainer import PolicyTrainer
    from training.config import PPOLagConfig, build_config
    from training.engine.backends import TorchBackend
    from training.models import ScoreModel

    cfg = build_config(
        PPOLagConfig,
        {
            "model_name_or_path": "in-memory",
            "reward_model_name_or_path": "in-memory",
            "cost_model_name_or_path": "in-memory",
            "train_data": "in-memory",
            "output_dir": args.workdir,
            "max_new_tokens": shape.response,
            "max_prompt_length": shape.prompt,
            "per_device_prompt_batch_size": shape.batch,
            "per_device_train_batch_size": shape.train_batch,
            "threshold": args.threshold,
            "lambda_lr": 0.1,
            "device": device.type,
            "precision": "bf16" if bf16 else "fp32",
            "actor_learning_rate": 1e-6,
            "critic_learning_rate": 1e-6,
        },
    )
    config = qwen_config(shape)
    frozen = torch.bfloat16 if bf16 else torch.float32
    torch.manual_seed(0)
    with torch.device(device):
        actor = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        reward_critic = ScoreModel(AutoModel.from_config(config, dtype=torch.float32), score_type="critic")
        cost_critic = ScoreModel(AutoModel.from_config(config, dtype=torch.float32), score_type="critic")
    reward_model = copy.deepcopy(reward_critic).to(frozen).eval().requires_grad_(False)  # critic = RM weights
    cost_model = copy.deepcopy(cost_critic).to(frozen).eval().requires_grad_(False)
    reward_model.score_type, cost_model.score_type = "reward", "cost"
    reference = copy.deepcopy(actor).to(frozen).eval().requires_grad_(False)
    trainer = PolicyTrainer(cfg, build_objective(cfg), "ppo-lag")
    total = 100
    trainer.models = PolicyModels(
        tokenizer=SimpleNamespace(pad_token_id=PAD),
        actor=TorchBackend(actor, actor_settings(cfg), total, device, bf16),
        reference=reference,
        reward_model=reward_model,
        reward_critic=TorchBackend(reward_critic, critic_settings(cfg), total, device, bf16),
        cost_model=cost_model,
        cost_critic=TorchBackend(cost_critic, critic_settings(cfg), total, device, bf16),
        rollout_copy=RolloutCopy(actor, torch.bfloat16) if bf16 else None,
    )
    trainer.prompts = SyntheticPrompts(shape)
    trainer.eos, trainer.ptx, trainer.total_steps = [EOS], None, total
    trainer.device = device  # prepare() would set it; this trainer skips prepare
    return trainer


class SyntheticPrompts:
    """Random prompts of ¾p to p tokens (never PAD or EOS), left-padded to p: the PromptSource API."""

    def __init__(self, shape: Shape) -> None:
        generator = torch.Generator().manual_seed(1)
        self.lengths = torch.randint(
            3 * shape.prompt // 4, shape.prompt + 1, (shape.batch,), generator=generator
        )
        self.ids = torch.randint(2, shape.vocab, (shape.batch, shape.prompt), generator=generator)
        self.shape = shape

    def batch(self, indices: list[int]) -> dict[str, torch.Tensor]:
        positions = torch.arange(self.shape.prompt)
        mask = (positions >= (self.shape.prompt - self.lengths[indices]).unsqueeze(1)).long()  # (B, p)
        return {"input_ids": torch.where(mask.bool(), self.ids[indices], PAD), "attention_mask": mask}


# ------------------------------------------------------------------ ceilings
def measure_ceilings(device: torch.device, tiny: bool) -> dict[str, float]:
    """Copy bandwidth (read + write) and a bf16 matmul peak of this machine, measured now."""
    if device.type != "cuda":
        return {"copy_bytes_per_s": float("nan"), "matmul_flops_per_s": float("nan")}
    src = torch.empty(1 << 30, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(20):
        dst.copy_(src)
    torch.cuda.synchronize()
    bandwidth = 2 * src.numel() * 20 / (time.perf_counter() - started)
    del src, dst
    n = 8192
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    a @ b
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(30):
        a @ b
    torch.cuda.synchronize()
    flops = 2 * n**3 * 30 / (time.perf_counter() - started)
    return {"copy_bytes_per_s": bandwidth, "matmul_flops_per_s": flops}


# ---------------------------------------------------------------- accounting
def counts(shape: Shape) -> dict[str, float]:
    """§4.2: dense parameters per layer stack, the LM head, and attention FLOPs per token pair."""
    d, dh = shape.hidden, shape.head_dim
    dense = shape.layers * (
        d * (shape.heads * dh + 2 * shape.kv_heads * dh) + shape.heads * dh * d + 3 * d * shape.intermediate
    )
    return {"dense": float(dense), "head": float(shape.vocab * d), "embed": float(shape.vocab * d)}


def forward_flops(n: float, seq: float, shape: Shape) -> float:
    """F_fwd(s) = 2·N·s + 2·L·h_q·d_h·s² (causal attention with the masked half skipped)."""
    return 2 * n * seq + 2 * shape.layers * shape.heads * shape.head_dim * seq**2


def accounting(shape: Shape, seqs: list[float], gen_steps: int) -> dict[str, float]:
    c = counts(shape)
    actor, scalar = c["dense"] + c["head"], c["dense"]
    gen = sum(forward_flops(actor, s, shape) for s in seqs)
    experience = sum(forward_flops(actor, s, shape) + 4 * forward_flops(scalar, s, shape) for s in seqs)
    train = sum(3 * forward_flops(actor, s, shape) + 6 * forward_flops(scalar, s, shape) for s in seqs)
    weight_bytes = 2 * (c["dense"] + c["embed"])  # bf16 actor copy (tied head read as the embedding)
    kv_per_token = 2 * shape.layers * shape.kv_heads * shape.head_dim * 2  # K and V, bf16
    kv_bytes = sum(shape.batch * (shape.prompt + k) * kv_per_token for k in range(gen_steps))
    return {
        "flops_generate": gen,
        "flops_experience": experience,
        "flops_train": train,
        "bytes_generate": gen_steps * weight_bytes + kv_bytes,
        "params_actor": c["dense"] + c["embed"],
    }


# -------------------------------------------------------------------- checks
def logprob_agreement(trainer: Any) -> dict[str, float]:
    """Old log-probs from the (bf16) KV-cache decode vs one full forward pass of the actor."""
    from training.algorithms.rollout import response_log_probs

    rollout = trainer.rollout(list(range(min(4, trainer.config.per_device_train_batch_size))))[0]
    actor = trainer.models.actor
    with torch.no_grad(), actor.autocast():
        full = response_log_probs(
            actor.model.eval(), rollout.input_ids, rollout.attention_mask, rollout.prompt_width
        )
    diff = (full - rollout.log_probs).abs()[rollout.response_mask]
    return {"logprob_abs_diff_mean": float(diff.mean()), "logprob_abs_diff_max": float(diff.max())}


def snapshot(trainer: Any) -> dict[str, torch.Tensor]:
    return {
        name: next(b.model.parameters()).detach().float().clone()
        for name, b in trainer.models.trained().items()
    }


def measure_steps(
    trainer: Any, shape: Shape, args: argparse.Namespace, started: float
) -> list[dict[str, float]]:
    """Step 0 warms up kernels and the allocator; then ``args.steps`` timed steps (if time allows)."""
    steps = []
    for step in range(args.steps + 1):
        trainer.timings = {}
        trainer._sync()
        t0 = time.perf_counter()
        metrics = trainer.train_on_batch(list(range(shape.batch)))
        trainer._sync()
        steps.append(
            {
                "seconds": time.perf_counter() - t0,
                **{f"t_{k}": v for k, v in trainer.timings.items()},
                **{k: v for k, v in metrics.items() if isinstance(v, float)},
            }
        )
        if step == 0 and time.perf_counter() - started > args.budget_s / 2:
            break
    return steps


def rates(
    shape: Shape, steps: list[dict[str, float]], ceilings: dict[str, float], name: str
) -> dict[str, Any]:
    """Tokens/s against the bandwidth roofline, MBU and MFU per phase and per step (§4.4)."""
    measured = steps[1:] or steps
    mean = lambda key: sum(s[key] for s in measured) / len(measured)  # noqa: E731
    gen_len = mean("train/mean_generated_length")
    seqs = [shape.prompt * 7 / 8 + gen_len] * shape.batch  # mean prompt of ¾p..p plus the response
    acct = accounting(shape, seqs, round(gen_len))
    t_gen, t_step, t_exp = mean("t_generate"), mean("seconds"), mean("t_score")
    t_train = mean("t_actor") + mean("t_critics")
    total_flops = acct["flops_generate"] + acct["flops_experience"] + acct["flops_train"]
    bandwidth = ceilings["copy_bytes_per_s"]
    datasheet = next((bw for key, bw in DATASHEET_BW.items() if key in name), float("nan"))
    tokens = shape.batch * gen_len
    return {
        "accounting": acct,
        "datasheet_bytes_per_s": datasheet,
        "step_seconds": t_step,
        "phase_seconds": {k[2:]: mean(k) for k in measured[0] if k.startswith("t_")},
        "generated_tokens_per_s": tokens / t_gen,
        "generation_roofline_tokens_per_s": tokens / (acct["bytes_generate"] / bandwidth),
        "generation_roofline_tokens_per_s_datasheet": tokens / (acct["bytes_generate"] / datasheet),
        "mbu_generate": acct["bytes_generate"] / t_gen / bandwidth,
        "mfu_generate": acct["flops_generate"] / t_gen / PEAK_BF16,
        "mfu_experience": acct["flops_experience"] / t_exp / PEAK_BF16,
        "mfu_train": acct["flops_train"] / t_train / PEAK_BF16,
        "mfu_step": total_flops / t_step / PEAK_BF16,
        "mfu_step_vs_measured_peak": total_flops / t_step / ceilings["matmul_flops_per_s"],
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    tiny = args.tiny
    device = torch.device("cuda" if torch.cuda.is_available() and not tiny else "cpu")
    if not tiny and device.type != "cuda":
        raise SystemExit("no CUDA device: run with --tiny for the CPU smoke test")
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    shape = TINY if tiny else QWEN_05B
    started = time.perf_counter()
    ceilings = measure_ceilings(device, tiny)
    trainer = build_trainer(shape, device, bf16, args)
    built = time.perf_counter() - started
    agreement = logprob_agreement(trainer)
    lam0, before = trainer.objective.multiplier.value, snapshot(trainer)
    steps = measure_steps(trainer, shape, args, started)
    after, lam1 = snapshot(trainer), trainer.objective.multiplier.value
    window = trainer.objective.multiplier.window_mean()
    losses = ("train/actor_loss", "train/reward_critic_loss", "train/cost_critic_loss")
    checks = {
        "finite_losses": all(math.isfinite(s[k]) for s in steps for k in losses),
        "logprobs_agree": agreement["logprob_abs_diff_mean"] < (0.05 if bf16 else 1e-4),
        "lambda_moves_towards_constraint": (lam1 > lam0) == (window > args.threshold),
        "all_trained_networks_changed": all(not torch.equal(before[k], after[k]) for k in before),
    }
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    result = {
        "device": name,
        "shape": shape.__dict__,
        "bf16": bf16,
        "build_seconds": built,
        "steps": steps,
        "ceilings": ceilings,
        **agreement,
        **rates(shape, steps, ceilings, name),
        "lambda": [lam0, lam1],
        "window_cost": window,
        "threshold": args.threshold,
        "checks": checks,
        "total_seconds": time.perf_counter() - started,
    }
    if device.type == "cuda":
        result["max_memory_allocated_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny models on CPU: a smoke test of this script")
    parser.add_argument("--steps", type=int, default=2, help="measured steps after one warm-up step")
    parser.add_argument(
        "--threshold",
        type=float,
        default=-1e6,
        help="cost threshold; the default is below any cost, so λ must rise",
    )
    parser.add_argument("--budget-s", type=float, default=150.0, help="skip measured steps past half of this")
    parser.add_argument("--workdir", default="/tmp/gpu_ppo_lag_step", help="scratch output directory")
    args = parser.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.WARNING)
    from training.engine.runtime import quiet_libraries

    quiet_libraries()
    result = run(args)
    phases = "  ".join(f"{k} {v:.2f}s" for k, v in result["phase_seconds"].items())
    print(f"{result['device']}: shape {result['shape']}, bf16={result['bf16']}")
    print(f"step {result['step_seconds']:.2f}s: {phases}")
    print(
        f"generation {result['generated_tokens_per_s']:.0f} tok/s vs roofline "
        f"{result['generation_roofline_tokens_per_s']:.0f} tok/s (measured copy bandwidth) / "
        f"{result['generation_roofline_tokens_per_s_datasheet']:.0f} tok/s (datasheet); MBU "
        f"{result['mbu_generate']:.3f}; MFU generate {result['mfu_generate']:.4f}, experience "
        f"{result['mfu_experience']:.3f}, train {result['mfu_train']:.3f}, step {result['mfu_step']:.3f}"
    )
    print(f"checks: {result['checks']}; log-prob |Δ| mean {result['logprob_abs_diff_mean']:.2e}")
    out = os.environ.get("OUT")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "gpu_ppo_lag_step.json").write_text(json.dumps(result, indent=1, default=float))
    roofline = result["generated_tokens_per_s"] / result["generation_roofline_tokens_per_s"]
    passed = str(all(result["checks"].values())).lower()
    print(
        f"gpu_ppo_lag_gen_tokens_per_s={result['generated_tokens_per_s']:.1f} "
        f"gpu_ppo_lag_gen_roofline_fraction={roofline:.4f} gpu_ppo_lag_step_s={result['step_seconds']:.3f} "
        f"gpu_ppo_lag_step_mfu={result['mfu_step']:.4f} checks_passed={passed}"
    )
    return 0 if passed == "true" else 1


if __name__ == "__main__":
    sys.exit(main())
