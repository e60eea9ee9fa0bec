"""Prepare every built-in dataset and print a table of sizes and split counts.

Usage:
    python -m keras_transformer.data [--data-dir DIR] [--cache-dir DIR] [--source-dir DIR]
"""

import argparse

import tensorflow_datasets as tfds

from keras_transformer.data import summary


def main(argv=None):
    """Parse the command line, prepare the datasets and print the table."""
    parser = argparse.ArgumentParser(prog="python -m keras_transformer.data", description=__doc__)
    parser.add_argument("--data-dir", default=None, help="tfds data folder (default: tfds's).")
    parser.add_argument("--cache-dir", default=None, help="cache of source files.")
    parser.add_argument("--source-dir", default=None, help="folder holding the source files.")
    args = parser.parse_args(argv)
    tfds.disable_progress_bar()
    rows = summary.dataset_table(
        data_dir=args.data_dir, cache_dir=args.cache_dir, source_dir=args.source_dir
    )
    print(summary.format_table(rows))


if __name__ == "__main__":
    main()
