"""The demo's rounds, driven as an admin would drive them: over the REST API only.

    python scripts/demo_rounds.py --url http://127.0.0.1:8000 --token ADMIN_TOKEN --rounds 2

1. Set-up (once; kept under --work): a toy world (docs/design/toyworld.md), a tiny Llama with a
   tokenizer of its corpus and a short SFT, run here with ``python -m training``; then, through
   the API, a project "Toy world" with the world's prompts (training prompts as source
   ``toyworld``, held-out ones as ``toyworld-heldout``) and the SFT model registered as a policy.
2. Each round: the presets of the next round, with the demo's sizes; create and launch it; when
   it collects, K simulated annotators (package ``simulate``) annotate its pairs through the queue
   while anyone else may annotate alongside them; then the platform trains the reward and cost
   models, PPO-Lag and evaluates, and the driver waits for the round to complete.
3. The per-round table (round 0 is the SFT policy) is printed and written to --report as a JSON
   list, one object per round.

Running it again continues: a project that already has completed rounds gets only the missing ones.
Exit status 0 when every round completed, 1 otherwise (the failing stage and its error printed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from saferlhf_client import Client  # noqa: E402
from simulate import CrowdSettings, enlist_bots, project_categories, run_bots  # noqa: E402
from simulate.bots import dismiss_bots  # noqa: E402

PROJECT = "Toy world"
TRAIN_SOURCE, HELDOUT_SOURCE = "toyworld", "toyworld-heldout"
SFT_NAME = "toy world SFT"
# Sizes of the demo: small enough for 2 CPU cores, large enough for the rounds to show the effect
# (docs/rounds.md, "Efficacy"). Everything else comes from the platform's per-round presets.
DEMO_SETTINGS: dict[str, Any] = {
    "prompt_sources": [TRAIN_SOURCE],
    "num_prompts": 300,
    "responses_per_prompt": 6,
    "overlap_k": 1,
    "gold_rate": 0.0,
}
COLUMNS = ("round", "true_helpfulness", "true_unsafe_rate", "reward_accuracy", "cost_sign_accuracy", "lambda")


def log(message: str) -> None:
    print(f"[rounds {time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(args: list[str], what: str) -> None:
    """A set-up step as a subprocess (torch stays out of this process); its output on failure."""
    log(what)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-2000:] + result.stderr[-3000:])
        raise SystemExit(f"error: {what} failed (exit {result.returncode})")


def build_assets(work: Path, sft_rows: int, sft_epochs: int) -> Path:
    """Toy world, tiny model and SFT under ``work`` (skipped when already there)."""
    world, tiny, sft = work / "world", work / "tiny", work / "sft"
    if not (world / "prompts.jsonl").is_file():
        run(
            ["-m", "training.toyworld", "generate", "--out", str(world), "--sft", str(sft_rows),
             "--pairs", "0", "--test-pairs", "0", "--seed", "0"],
            "generating the toy world",
        )  # fmt: skip
    if not (tiny / "config.json").is_file():
        run(
            ["-m", "training", "init-tiny", "--out", str(tiny), "--corpus", str(world / "sft.jsonl"),
             "--layers", "2", "--hidden", "128"],
            "building a tiny Llama and its tokenizer",
        )  # fmt: skip
    if not (sft / "summary.json").is_file():
        run(
            ["-m", "training", "sft", "--model_name_or_path", str(tiny),
             "--train_data", str(world / "sft.jsonl"), "--output_dir", str(sft),
             "--epochs", str(sft_epochs), "--learning_rate", "3e-3",
             "--per_device_train_batch_size", "32", "--gradient_accumulation_steps", "1",
             "--max_length", "128", "--weight_decay", "0", "--lr_warmup_ratio", "0.05",
             "--logging_steps", "50"],
            f"supervised fine-tuning on {sft_rows} toy-world rows ({sft_epochs} epochs)",
        )  # fmt: skip
    return sft


def model_dir(sft: Path, work: Path) -> Path:
    """The SFT model's files without its run records (what gets registered)."""
    clean = work / "sft-model"
    clean.mkdir(exist_ok=True)
    for path in sft.iterdir():
        if path.is_file() and path.name not in ("events.jsonl", "summary.json"):
            (clean / path.name).write_bytes(path.read_bytes())
    return clean


def prompt_file(world: Path, keys: dict[str, str]) -> bytes:
    """The world's prompts as a platform prompt import (harm categories as the project's keys)."""
    lines = []
    for line in (world / "prompts.jsonl").read_text().splitlines():
        row = json.loads(line)
        held_out = row["split"] == "eval"
        category = keys.get(row["harm_category"] or "")
        lines.append(
            json.dumps(
                {
                    "prompt": row["prompt"],
                    "source": HELDOUT_SOURCE if held_out else TRAIN_SOURCE,
                    "tags": [row["topic"], "risky" if row["risky"] else "benign"],
                    "is_red_team": bool(row["red_team"]),
                    "harm_category": category,
                }
            )
        )
    return ("\n".join(lines) + "\n").encode()


def set_up_project(api: Client, world: Path, sft_dir: Path) -> tuple[int, int]:
    """(project id, SFT model id): found by name, or created and filled."""
    project = next((p for p in api.list_projects() if p.name == PROJECT), None)
    if project is None:
        guidelines = (REPO / "docs" / "examples" / "guidelines.md").read_text()
        project = api.create_project(PROJECT, guidelines_md=guidelines, default_overlap=1, gold_rate=0.0)
        keys = project_categories(api, project.id)
        result = api.import_file(project.id, prompt_file(world, keys), "prompts", filename="toyworld.jsonl")
        log(f"project {project.id}: imported {result.imported_rows} toy-world prompts")
    models = api.list_models(kind="policy", project_id=project.id)
    sft = next((m for m in models if m["name"] == SFT_NAME), None)
    if sft is None:
        sft = api.register_model(sft_dir, kind="policy", name=SFT_NAME, project_id=project.id)
        log(f"registered the SFT policy as model {sft['id']}")
    return project.id, int(sft["id"])


async def annotate_round(url: str, api: Client, project_id: int, round_id: int, crowd: CrowdSettings) -> int:
    """The bots annotate every pair of the round (anyone may annotate alongside them)."""
    bots = enlist_bots(api, project_id, crowd.profiles())
    try:
        tally = await run_bots(url, bots, project_id, project_categories(api, project_id), seed=round_id)
    finally:
        dismiss_bots(api, bots)
    return tally.total


def run_round(
    args: argparse.Namespace, api: Client, project_id: int, sft_id: int, number: int
) -> dict[str, Any]:
    settings = api.round_presets(project_id) | DEMO_SETTINGS
    settings |= {"num_prompts": args.prompts, "responses_per_prompt": args.responses}
    for key, value in args.settings.items():  # --settings: a stage config is merged option by option
        merge = key.endswith("_config") and isinstance(value, dict)
        settings[key] = {**settings.get(key, {}), **value} if merge else value
    if number == 1:
        settings["base_policy_id"] = sft_id
    # Collection ends when the queue is empty (below): the number of pairs depends on how many of
    # the policy's answers to a prompt are distinct.
    settings["collection_target_pairs"] = None
    created = api.create_round(project_id, settings)
    round_id = int(created["id"])
    log(f"round {number} (id {round_id}) launched: {args.url}/admin/rounds/{round_id}")
    api.wait_for_round(round_id, states=frozenset({"collecting", "completed", "failed", "cancelled"}))
    crowd = CrowdSettings(bots=args.bots, noise=args.noise, position_bias=0.02, safety_error=0.02)
    submitted = asyncio.run(annotate_round(args.url, api, project_id, round_id, crowd))
    if api.get_round(round_id)["state"] == "collecting":
        api.close_collection(round_id)
    log(f"round {number}: the bots submitted {submitted} answers; training")
    shown: dict[str, Any] = {"key": "", "at": 0.0}

    def show(current: dict[str, Any]) -> None:
        # A line per stage change, and the progress at most every 30 s.
        stage = str(current.get("stage") or current["state"])
        key = re.sub(r"\d+%", "", stage)
        if key != shown["key"] or time.monotonic() - shown["at"] >= 30:
            shown.update(key=key, at=time.monotonic())
            log(f"round {number}: {stage}")

    final = api.wait_for_round(round_id, on_update=show, poll_s=3.0)
    if final["state"] != "completed":
        detail = final.get("error") or final.get("failed_stage") or ""
        raise SystemExit(f"error: round {number} ended {final['state']} {detail}".rstrip())
    return final


def table_rows(api: Client, project_id: int) -> list[dict[str, Any]]:
    """The report's rows of completed rounds, after a round 0: the SFT policy, as judged in round 1's
    arena (its red corner), on the same held-out prompts."""
    report = [r for r in api.round_report(project_id) if r.get("state") == "completed"]
    rows = [{key: r.get(key) for key in COLUMNS} | r for r in report]
    first = next((r for r in report if r.get("round") == 1), None)
    if first is not None:
        baseline = dict.fromkeys(COLUMNS) | {
            "round": 0,
            "state": "baseline",
            "policy": SFT_NAME,
            "true_helpfulness": first.get("previous_true_helpfulness"),
            "true_unsafe_rate": first.get("previous_true_unsafe_rate"),
        }
        rows.insert(0, baseline)
    return rows


def load_settings(parser: argparse.ArgumentParser, path: Path | None) -> dict[str, Any]:
    """The --settings file's object, or a one-line error naming the file."""
    if path is None:
        return {}
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        parser.error(f"--settings {path}: {exc}")
    if not isinstance(loaded, dict):
        parser.error(f"--settings {path}: a JSON object of round settings is expected")
    return loaded


def print_table(rows: list[dict[str, Any]]) -> None:
    def cell(value: Any) -> str:
        return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)

    widths = [max(len(c), 8) for c in COLUMNS]
    print("  ".join(c.rjust(w) for c, w in zip(COLUMNS, widths, strict=True)))
    for row in rows:
        print("  ".join(cell(row.get(c)).rjust(w) for c, w in zip(COLUMNS, widths, strict=True)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("SAFERLHF_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--token", default=os.environ.get("SAFERLHF_TOKEN"))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--bots", type=int, default=5)
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--work", type=Path, default=REPO / ".dev" / "demo")
    parser.add_argument("--report", type=Path, default=None, help="default: WORK/report.json")
    parser.add_argument("--sft-rows", type=int, default=8000)
    parser.add_argument("--sft-epochs", type=int, default=3)
    parser.add_argument("--prompts", type=int, default=DEMO_SETTINGS["num_prompts"], help="per round")
    parser.add_argument("--responses", type=int, default=DEMO_SETTINGS["responses_per_prompt"])
    parser.add_argument(
        "--settings",
        type=Path,
        default=None,
        help="a JSON file of round settings over the presets (e.g. a policy_config with fewer steps)",
    )
    args = parser.parse_args(argv)
    if not args.token:
        parser.error("give an admin API token with --token or SAFERLHF_TOKEN")
    args.settings = load_settings(parser, args.settings)
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    sft = build_assets(args.work, args.sft_rows, args.sft_epochs)
    with Client(args.url, args.token, timeout=120) as api:
        project_id, sft_id = set_up_project(api, args.work / "world", model_dir(sft, args.work))
        done = sum(1 for r in api.list_rounds(project_id) if r["state"] == "completed")
        for number in range(done + 1, args.rounds + 1):
            run_round(args, api, project_id, sft_id, number)
        rows = table_rows(api, project_id)
    report = args.report or args.work / "report.json"
    report.write_text(json.dumps(rows, indent=1, default=str) + "\n")
    print_table(rows)
    log(f"{len(rows)} rows written to {report} ({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
