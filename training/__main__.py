"""``python -m training STAGE [--config run.json] [--key=value ...]``; ``STAGE --help`` lists options.

Exit status: 0 done, 2 a user mistake (bad option, missing file, bad data: one clear line on
stderr), 1 an unexpected failure (with a traceback).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models are local directories; never reach a hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from training.config import describe_config, load_config, parse_overrides  # noqa: E402
from training.errors import UserError, one_line  # noqa: E402
from training.stages import STAGES, Stage, get_stage  # noqa: E402

USAGE = "usage: python -m training STAGE [--config run.json] [--key=value ...]   (STAGE --help for options)"


def _stage_list() -> str:
    return "\n".join(f"  {name:<12} {stage.summary}" for name, stage in STAGES.items())


def _split_args(args: list[str]) -> tuple[str | None, list[str], bool]:
    """(config path, override args, help wanted); the launcher's --local_rank is dropped."""
    config, rest, want_help = None, [], False
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-h", "--help"):
            want_help = True
        elif arg == "--config" and i + 1 < len(args):
            config = args[i + 1]
            i += 1
        elif arg.startswith("--config="):
            config = arg.split("=", 1)[1]
        elif arg.startswith("--local_rank"):
            if "=" not in arg:
                i += 1
        else:
            rest.append(arg)
        i += 1
    return config, rest, want_help


def _run(stage: Stage, config_path: str | None, overrides: list[str]) -> dict[str, Any]:
    config: Any = load_config(stage.config_cls, config_path, parse_overrides(overrides), stage=stage.name)
    from training.engine.runtime import LOG_FORMAT, quiet_libraries

    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, stream=sys.stderr)
    quiet_libraries()
    if os.environ.get("RANK", "0") == "0":  # one train.log in the output directory, by rank 0
        from pathlib import Path

        from training.engine.runtime import add_file_logging

        output_dir = Path(getattr(config, stage.output_field))
        output_dir.mkdir(parents=True, exist_ok=True)
        add_file_logging(output_dir)
    return stage.load_runner()(config)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(f"{USAGE}\n\nstages:\n{_stage_list()}")
        return 0 if args else 2
    if args[0] == "plan":  # not a stage: the memory planner (torch-free arithmetic)
        from training.planning.cli import main as plan_main

        return plan_main(args[1:])
    try:
        stage = get_stage(args[0])
        config_path, overrides, want_help = _split_args(args[1:])
        if want_help:
            print(
                f"python -m training {stage.name}: {stage.summary}\n\noptions:\n"
                f"{describe_config(stage.config_cls)}"
            )
            return 0
        summary = _run(stage, config_path, overrides)
    except (UserError, OSError) as exc:  # the stage's events.jsonl already ends with status=failed
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    if os.environ.get("RANK", "0") == "0":
        print(json.dumps(summary, indent=2, sort_keys=True, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
