"""Command line: `python -m workflows NAME [--setting value ...] [--config FILE]`.

TensorFlow's C++ log lines (oneDNN notes, the `cuInit` error of the CUDA wheel without a GPU)
are hidden unless `TF_CPP_MIN_LOG_LEVEL` is set: the first import below, `keras_transformer`,
does it before TensorFlow loads (`keras_transformer._quiet`).
"""

import argparse
import dataclasses
import importlib
import json
import sys

from keras_transformer.training import (
    ConfigMismatchError,
    WorkerLostError,
    add_cluster_arguments,
    cluster_from_args,
)
from workflows.config import add_arguments, config_from_args, sagemaker_defaults

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
    "compress": "workflows.compress",
    "seq2seq": "workflows.seq2seq",
}
# The workflows that train: they take the cluster flags and run on several workers.
DISTRIBUTED = ("pretrain", "transfer", "finetune", "scratch", "distill", "compress", "seq2seq")


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
        if name in DISTRIBUTED:
            add_cluster_arguments(sub)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    module = importlib.import_module(WORKFLOWS[args.workflow])
    try:
        if args.workflow in DISTRIBUTED:
            cluster = cluster_from_args(args)  # --workers, TF_CONFIG or SageMaker -> TF_CONFIG
            if cluster.is_multi_worker:
                print(
                    f"[{args.workflow}] worker {cluster.index} of {cluster.num_workers} "
                    f"(cluster from {cluster.source})",
                    flush=True,
                )
        defaults = sagemaker_defaults(module.Config) if args.workflow in DISTRIBUTED else {}
        config = config_from_args(module.Config, args, defaults=defaults)
        for key, value in defaults.items():
            if getattr(config, key) == value:
                print(f"[{args.workflow}] SageMaker: --{key.replace('_', '-')} {value}", flush=True)
    except (ValueError, TypeError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        result = module.run(config)
    except (WorkerLostError, ConfigMismatchError) as error:  # a cluster's failure: rerun
        print(f"error: {error}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as error:  # bad settings or data, unwritable folder, full disk
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(dataclasses.asdict(result), indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
