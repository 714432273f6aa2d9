"""Rollout generation under ZeRO-3 at world size 2, three ways, in one command (issue 12).

    .venv/bin/python benchmarks/zero3_generation.py [--new-tokens 32] [--prompts-per-rank 8]
        [--repeats 3] [--hidden 128] [--layers 2] [--ranks 2] [--keep DIR]

Builds a toy world and a tiny Llama from it (``init-tiny``, hidden 128 and 2 layers by default),
then starts ``--ranks`` ranks under ``torchrun --standalone`` (gloo on CPU in fp32, NCCL on GPUs in
bf16, one GPU per rank). Each rank wraps the same actor in the repo's ZeRO-3 ``DeepSpeedBackend``
(AdamW, as the PPO-Lag actor) and decodes
its own slice of the same prompts with the repo's KV-cache ``generate`` (greedy, EOS disabled so
every rank decodes exactly ``--new-tokens`` tokens: with DeepSpeed's hooks on, ranks must run the
same number of forwards):

(a) ``gathered``: inside ``DeepSpeedBackend.gathered_for_generation`` (the actor gathered once per
    rollout, DeepSpeed's per-module hooks off), what the policy stages do;
(b) ``hooks``: plain ZeRO-3, DeepSpeed's per-module hooks gather every layer at every token;
(c) ``hybrid``: DeepSpeed's hybrid engine (``"hybrid_engine": {"enabled": true}`` in the same
    config, ``engine.generate``, i.e. transformers' greedy ``generate`` with ``min_new_tokens`` =
    ``max_new_tokens``); where it cannot be built or run, the exact error is printed instead.

Each way runs once to warm up, then ``--repeats`` times interleaved; a repeat's time is the slower
rank's wall time of the whole rollout (gather included), and the figure is the median. (a) and (b)
must produce identical tokens (greedy): the run fails otherwise. The last line is

    zero3_gen_gathered_over_hooks_time=… zero3_gen_hybrid_over_gathered_time=…|unavailable
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(REPO / ".dev" / "torch_extensions"))

NO_EOS = -1  # a token id no model produces: decoding never stops early
HYBRID_SETTINGS = {
    "enabled": True,
    "max_out_tokens": 512,
    "inference_tp_size": 1,
    "release_inference_cache": False,
    "pin_parameters": True,  # gather all layers once for the whole generate (the ZeRO-3 path)
    "tp_gather_partition_size": 8,
}


# ---------------------------------------------------------------------------- parent process
def build_inputs(root: Path, hidden: int, layers: int) -> dict[str, Path]:
    from training.config import InitTinyConfig
    from training.models.tiny import run_init_tiny
    from training.toyworld import WorldConfig, generate_world

    generate_world(root / "world", WorldConfig(noise=0.1, seed=0))
    heads = max(4, hidden // 64)  # 4 heads of 32 at the default size, heads of 64 when larger
    run_init_tiny(
        InitTinyConfig(
            out=str(root / "actor"),
            corpus=str(root / "world" / "sft.jsonl"),
            hidden=hidden,
            layers=layers,
            heads=heads,
        )
    )
    return {"actor": root / "actor", "prompts": root / "world" / "prompts.jsonl"}


def launch(args: argparse.Namespace, paths: dict[str, Path], result: Path) -> tuple[int, str]:
    """Run the ranks; return torchrun's exit status (124: timed out) and the tail of its output.
    The ranks get their own process group, so a timeout kills them too, not only torchrun."""
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    env = {
        k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")
    }
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), TOKENIZERS_PARALLELISM="false")
    import torch

    if not torch.cuda.is_available():
        env["DS_ACCELERATOR"] = "cpu"
    cmd = [torchrun, "--standalone", "--nproc_per_node", str(args.ranks), str(Path(__file__).resolve())]
    cmd += ["--worker"]
    cmd += ["--model", str(paths["actor"]), "--prompts", str(paths["prompts"]), "--result", str(result)]
    cmd += ["--new-tokens", str(args.new_tokens), "--prompts-per-rank", str(args.prompts_per_rank)]
    cmd += ["--repeats", str(args.repeats)]
    log = result.with_suffix(".log")
    with log.open("w") as sink:
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            code = proc.wait(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            code = 124
    return code, log.read_text()[-4000:]


def report(result: dict[str, Any], code: int, output: str) -> None:
    timings = result["timings"]
    for name in ("gathered", "hooks", "hybrid"):
        if name in timings:
            runs = ", ".join(f"{t:.3f}" for t in timings[name])
            print(f"{name}: median {statistics.median(timings[name]):.3f} s over [{runs}] s")
    tokens = result["tokens_per_rollout"]
    print(
        f"{tokens} new tokens per rollout over {result['ranks']} ranks "
        f"({result['prompts_per_rank']} prompts x {result['new_tokens']} tokens per rank); "
        f"{result['device']}; "
        f"gathered and hooks produce identical tokens: {result['identical']}"
    )
    hybrid = "unavailable"
    if "hybrid" in timings:
        ratio = statistics.median(timings["hybrid"]) / statistics.median(timings["gathered"])
        hybrid = f"{ratio:.3f}"
        print(f"hybrid engine tokens equal to gathered: {result.get('hybrid_identical')}")
    else:
        error = result.get("hybrid_error") or f"the ranks exited {code} before it finished: {output[-600:]}"
        print(f"hybrid engine unavailable: {error}")
    over = statistics.median(timings["gathered"]) / statistics.median(timings["hooks"])
    print(f"zero3_gen_gathered_over_hooks_time={over:.3f} zero3_gen_hybrid_over_gathered_time={hybrid}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--new-tokens", type=int, default=32, help="tokens decoded per prompt")
    parser.add_argument("--prompts-per-rank", type=int, default=8, help="prompts each rank decodes at once")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats of each way (median)")
    parser.add_argument("--hidden", type=int, default=128, help="hidden size of the tiny Llama")
    parser.add_argument("--layers", type=int, default=2, help="decoder layers of the tiny Llama")
    parser.add_argument("--ranks", type=int, default=2, help="processes (one GPU each on a GPU machine)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds the ranks may take")
    parser.add_argument("--keep", type=Path, help="work directory to keep (default: a temporary one)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--prompts", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if min(args.repeats, args.new_tokens, args.prompts_per_rank, args.ranks) < 1:
        sys.exit("--repeats, --new-tokens, --prompts-per-rank and --ranks must be at least 1")
    if args.worker:
        worker(args)
        return
    root = args.keep or Path(tempfile.mkdtemp(prefix="zero3_generation_"))
    root.mkdir(parents=True, exist_ok=True)
    paths = build_inputs(root, args.hidden, args.layers)
    result_path = root / "result.json"
    result_path.unlink(missing_ok=True)
    code, output = launch(args, paths, result_path)
    if not result_path.exists():
        sys.exit(f"the ranks failed (exit {code}):\n{output}")
    result = json.loads(result_path.read_text())
    report(result, code, output)
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)
    if not result["identical"]:
        sys.exit("gathered and hooks generated different tokens")


# ---------------------------------------------------------------------------- each rank
def worker(args: argparse.Namespace) -> None:
    import torch
    import torch.distributed as dist

    from training.algorithms.policy_models import OptimizerSettings
    from training.algorithms.rl_data import PromptSource
    from training.algorithms.rollout import SamplingSettings, generate
    from training.engine.backends import DeepSpeedBackend
    from training.engine.distributed import init_deepspeed_distributed, rank
    from training.models import load_causal_lm, load_tokenizer

    torch.set_num_threads(1)
    init_deepspeed_distributed()
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", int(os.environ["LOCAL_RANK"])) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    me = rank()
    tokenizer = load_tokenizer(str(args.model), padding_side="left")
    source = PromptSource(str(args.prompts), tokenizer, max_prompt_length=64)
    count = args.prompts_per_rank
    batch = source.batch(list(range(me * count, (me + 1) * count)))
    prompt_ids = batch["input_ids"].to(device)  # (B, S) left-padded
    prompt_mask = batch["attention_mask"].to(device)  # (B, S)
    settings = SamplingSettings(max_new_tokens=args.new_tokens, temperature=0.0)
    optim = OptimizerSettings(
        learning_rate=1e-5,
        weight_decay=0.0,
        adam_betas=(0.9, 0.95),
        lr_scheduler_type="constant",
        lr_warmup_ratio=0.0,
        max_grad_norm=1.0,
        per_device_train_batch_size=count,
        zero_stage=3,
    )
    backend = DeepSpeedBackend(load_causal_lm(args.model), optim, 1, device, bf16=cuda)  # type: ignore[arg-type]
    backend.model.eval()

    def decode() -> torch.Tensor:
        return generate(
            backend.model, prompt_ids, prompt_mask, settings, [NO_EOS], tokenizer.pad_token_id
        ).input_ids

    def gathered() -> torch.Tensor:
        with backend.gathered_for_generation():
            return decode()

    ways: dict[str, Callable[[], torch.Tensor]] = {"gathered": gathered, "hooks": decode}
    result: dict[str, Any] = {
        "device": f"{dist.get_world_size()} ranks, {dist.get_backend()}, "
        + (f"{torch.cuda.get_device_name()}, bf16" if cuda else "CPU, 1 thread per rank, fp32"),
        "ranks": dist.get_world_size(),
        "prompts_per_rank": count,
        "new_tokens": args.new_tokens,
        "tokens_per_rollout": count * args.new_tokens * dist.get_world_size(),
    }
    tokens, timings = time_ways(ways, args.repeats, device)
    result["identical"] = all_ranks(torch.equal(tokens["gathered"], tokens["hooks"]), device)
    result["timings"] = timings
    write(args.result, result)  # (a) and (b) are on record even if the hybrid engine hangs

    try:
        hybrid = build_hybrid_engine(args.model, optim, backend.ds_config)

        def hybrid_generate() -> torch.Tensor:
            out = hybrid.generate(
                input_ids=prompt_ids,
                attention_mask=prompt_mask,
                max_new_tokens=args.new_tokens,
                min_new_tokens=args.new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
            return out  # (B, S + new tokens)

        hybrid.eval()
        hybrid_tokens, hybrid_timings = time_ways({"hybrid": hybrid_generate}, args.repeats, device)
        result["timings"]["hybrid"] = hybrid_timings["hybrid"]
        result["hybrid_identical"] = all_ranks(
            torch.equal(hybrid_tokens["hybrid"], tokens["gathered"]), device
        )
    except Exception as exc:  # recorded: the hybrid engine's kernels may not exist on this device
        result["hybrid_error"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:400]}"
        result["hybrid_traceback"] = traceback.format_exc()[-3000:]
    write(args.result, result)


def build_hybrid_engine(model_dir: Path, optim: Any, ds_config: dict[str, Any]) -> Any:
    """A second ZeRO-3 engine of the same actor, with DeepSpeed's hybrid engine switched on."""
    import deepspeed

    from training.engine.optim import build_optimizer, build_scheduler
    from training.models import load_causal_lm

    model = load_causal_lm(model_dir)
    optimizer = build_optimizer(model, optim)
    config = {**ds_config, "hybrid_engine": HYBRID_SETTINGS}
    engine, *_ = deepspeed.initialize(
        model=model, optimizer=optimizer, lr_scheduler=build_scheduler(optimizer, optim, 1), config=config
    )
    if type(engine).__name__ != "DeepSpeedHybridEngine":
        raise RuntimeError(f"deepspeed.initialize returned {type(engine).__name__}, not the hybrid engine")
    return engine


def time_ways(
    ways: dict[str, Callable[[], Any]], repeats: int, device: Any
) -> tuple[dict[str, Any], dict[str, list[float]]]:
    """One warm-up call of each way, then ``repeats`` rounds of all ways interleaved (so load drift
    on a shared machine hits every way alike). A call's time is the slower rank's."""
    import torch
    import torch.distributed as dist

    tokens = {name: run() for name, run in ways.items()}
    timings: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(repeats):
        for name, run in ways.items():
            dist.barrier()
            started = time.perf_counter()
            tokens[name] = run()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            elapsed = torch.tensor([time.perf_counter() - started], dtype=torch.float64, device=device)
            dist.all_reduce(elapsed, op=dist.ReduceOp.MAX)
            timings[name].append(float(elapsed.item()))
    return tokens, timings


def all_ranks(flag: bool, device: Any) -> bool:
    import torch
    import torch.distributed as dist

    value = torch.tensor([int(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item())


def write(path: Path, result: dict[str, Any]) -> None:
    import torch.distributed as dist

    if dist.get_rank() == 0:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=2))
        tmp.replace(path)


if __name__ == "__main__":
    main()
