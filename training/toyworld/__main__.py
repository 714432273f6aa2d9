"""``python -m training.toyworld generate --out DIR [--pairs N] [--noise P] [--seed S] ...``"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import fields

from training.toyworld.generate import WorldConfig, generate_world

_HELP = {
    "pairs": "number of noisy training pairs (pairs_train.jsonl)",
    "test_pairs": "number of held-out pairs with the judges' true labels (pairs_test.jsonl)",
    "sft": "number of supervised rows (sft.jsonl)",
    "noise": "probability that an annotator flips each preference, independently per axis",
    "safety_error": "probability that an annotator flips a response's safe/unsafe label",
    "position_bias": "probability that an annotator picks the first-shown response",
    "spammer_share": "share of annotators who answer at random",
    "annotators": "number of simulated annotators",
    "eval_fraction": "share of each topic's prompts held out for test pairs and evaluation",
    "seed": "random seed",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training.toyworld", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="write a toy-world dataset to --out")
    gen.add_argument("--out", required=True, help="output directory")
    defaults = WorldConfig()
    for f in fields(WorldConfig):
        flag = "--" + f.name.replace("_", "-")
        gen.add_argument(
            flag,
            type=type(getattr(defaults, f.name)),
            default=getattr(defaults, f.name),
            help=f"{_HELP[f.name]} (default: %(default)s)",
        )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    values = {f.name: getattr(args, f.name) for f in fields(WorldConfig)}
    for name in ("pairs", "test_pairs", "sft", "annotators"):
        if values[name] < (1 if name == "annotators" else 0):
            print(f"error: --{name.replace('_', '-')} must not be negative", file=sys.stderr)
            return 2
    try:
        manifest = generate_world(args.out, WorldConfig(**values))
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(manifest["counts"] | manifest["stats"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
