"""`python -m keras_transformer.training.launch --workers 2 -- <command ...>`

Runs the command as N local workers on 127.0.0.1 (free ports, one `TF_CONFIG` each), prints
their output prefixed `[worker i]`, stops them all when one fails or the timeout passes, and
exits with the first non-zero exit code (0 when every worker succeeded). Example:

    python -m keras_transformer.training.launch --workers 2 -- \\
        python -m workflows pretrain --strategy multi_worker --steps 200 --output-dir runs/mw
"""

import argparse
import sys

from keras_transformer.training.launcher import launch_workers


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" in argv:
        split = argv.index("--")
        own, command = argv[:split], argv[split + 1 :]
    else:
        own, command = argv, []
    parser = argparse.ArgumentParser(
        prog="python -m keras_transformer.training.launch",
        description="Run a command as N local workers (multi-worker training on one machine).",
    )
    parser.add_argument("--workers", type=int, default=2, help="number of worker processes")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds before killing all")
    parser.add_argument(
        "--grace", type=float, default=30.0, help="seconds the others get after one fails"
    )
    parser.add_argument("--log-dir", default=None, help="folder for worker-<i>.log files")
    parser.add_argument("--pin-cores", action="store_true", help="one CPU core per worker")
    args = parser.parse_args(own)
    if not command:
        parser.error("give the command after `--`, e.g. -- python -m workflows pretrain ...")
    result = launch_workers(
        command,
        num_workers=args.workers,
        timeout=args.timeout,
        grace_seconds=args.grace,
        log_dir=args.log_dir,
        echo=True,
        pin_cores=args.pin_cores,
    )
    print(f"[launch] {result.seconds:.1f} s; logs in {result.log_paths[0].rsplit('/', 1)[0]}")
    print("[launch] " + result.summary.replace("\n", "\n[launch] "), flush=True)
    return next((code for code in result.returncodes if code != 0), 0)


if __name__ == "__main__":
    code = main()
    sys.exit(code if 0 <= code < 256 else 1)
