"""Command line: `python -m workflows NAME [--setting value ...] [--config FILE]`."""

import argparse
import dataclasses
import importlib
import json
import os
import sys

from workflows.config import add_arguments, config_from_args

# name -> module; each module has `Config` (a frozen dataclass), `run(config)` and `__doc__`.
WORKFLOWS = {
    "main": "workflows.main_job",
    "pretrain": "workflows.pretrain",
    "export": "workflows.export",
    "predict": "workflows.predict",
    "transfer": "workflows.transfer",
    "finetune": "workflows.finetune",
    "scratch": "workflows.scratch",
    "as-is": "workflows.asis",
    "distill": "workflows.distill",
}


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m workflows",
        description="keras-transformer workflows. `python -m workflows NAME --help` for one.",
    )
    commands = parser.add_subparsers(dest="workflow", required=True, metavar="NAME")
    for name, module_name in WORKFLOWS.items():
        module = importlib.import_module(module_name)
        summary = (module.__doc__ or "").strip().splitlines()[0]
        sub = commands.add_parser(
            name,
            help=summary,
            description=module.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add_arguments(sub, module.Config)
    return parser


def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    module = importlib.import_module(WORKFLOWS[args.workflow])
    try:
        config = config_from_args(module.Config, args)
    except (ValueError, TypeError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        result = module.run(config)
    except OSError as error:  # unwritable folder, full disk, missing file: say it, no traceback
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(dataclasses.asdict(result), indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
