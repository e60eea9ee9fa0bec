"""Workflows: each a plain function taking a frozen, typed config and returning a result.

Run any of them from the command line with `python -m workflows NAME [--flags]` (or the
installed `keras-transformer NAME`); `python -m workflows NAME --help` lists its settings.
"""
