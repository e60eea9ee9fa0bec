"""Typed, frozen workflow configs: from flags or a JSON/YAML file, saved beside each run."""

import argparse
import dataclasses
import json
import os
import tempfile
import types
import typing


def setting(default, help, choices=None):
    """A config field with a default, a help text and optional choices (for the CLI)."""
    metadata = {"help": help}
    if choices:
        metadata["choices"] = choices
    return dataclasses.field(default=default, metadata=metadata)


def add_arguments(parser, config_class):
    """Adds one `--flag` per field of `config_class`; unset flags are left out of the result."""
    hints = typing.get_type_hints(config_class)
    for field in dataclasses.fields(config_class):
        kind = hints[field.name]
        args = typing.get_args(kind)
        if isinstance(kind, types.UnionType):
            kind = next(a for a in args if a is not type(None))
        flag = "--" + field.name.replace("_", "-")
        help_text = field.metadata.get("help", "")
        default = field.default if field.default is not dataclasses.MISSING else None
        help_text = f"{help_text} (default: {default})".strip()
        if kind is bool:
            parser.add_argument(
                flag,
                dest=field.name,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=help_text,
            )
        else:
            choices = field.metadata.get("choices")
            parser.add_argument(
                flag,
                dest=field.name,
                type=kind,
                choices=choices,
                default=argparse.SUPPRESS,
                help=help_text,
            )
    parser.add_argument(
        "--config",
        dest="_config_file",
        default=None,
        help="A JSON or YAML file of settings; flags given on the command line override it.",
    )


def read_config_file(path):
    """Reads a JSON or YAML mapping of settings."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Config file not found: {path}")
    with open(path, encoding="utf-8") as file:
        text = file.read()
    if path.endswith((".yaml", ".yml")):
        import yaml

        values = yaml.safe_load(text)
    else:
        values = json.loads(text)
    if not isinstance(values, dict):
        raise ValueError(f"Config file {path} must hold a mapping of settings, not {type(values)}")
    return values


def build_config(config_class, values):
    """Builds a config from a mapping, rejecting unknown settings by name."""
    names = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(
            f"Unknown settings for {config_class.__name__}: {unknown}. "
            f"Known settings: {sorted(names)}."
        )
    return config_class(**values)


# Command-line flags that are not settings of a workflow's config.
NOT_SETTINGS = ("workflow", "workers", "worker_index")


def config_from_args(config_class, namespace, defaults=None):
    """Merges `defaults`, a `--config` file and the flags given (flags win) into a config."""
    values = dict(defaults or {})
    file_path = getattr(namespace, "_config_file", None)
    if file_path:
        values.update(read_config_file(file_path))
    values.update({k: v for k, v in vars(namespace).items() if not k.startswith("_")})
    for name in NOT_SETTINGS:
        values.pop(name, None)
    return build_config(config_class, values)


def sagemaker_defaults(config_class, environ=None):
    """The settings a SageMaker training job implies, for the flags its command leaves out.

    - `output_dir`: `SM_MODEL_DIR` (what SageMaker uploads as the model artifact).
    - `corpus` (pretrain): the `training` channel's folder (`SM_CHANNEL_TRAINING`, or the only
      channel).
    - `dataset` (classifiers): the one CSV/TSV file in that folder.

    Returns:
        dict (empty outside SageMaker).
    """
    from keras_transformer.training import sagemaker_paths

    paths = sagemaker_paths(environ)
    names = {field.name for field in dataclasses.fields(config_class)}
    defaults = {}
    if paths["model_dir"] and "output_dir" in names:
        defaults["output_dir"] = paths["model_dir"]
    channels = paths["channels"]
    folder = channels.get("training") or (
        next(iter(channels.values())) if len(channels) == 1 else None
    )
    if folder and "corpus" in names:
        defaults["corpus"] = folder
    elif folder and "dataset" in names:
        tables = sorted(
            name for name in os.listdir(folder) if name.lower().endswith((".csv", ".tsv"))
        )
        if len(tables) != 1:
            raise ValueError(
                f"The SageMaker channel folder {folder} holds {len(tables)} CSV/TSV files "
                f"({tables[:5]}); pass --dataset with the one to use."
            )
        defaults["dataset"] = os.path.join(folder, tables[0])
    return defaults


def write_json_atomic(path, data):
    """Writes JSON to `path` through a temporary file and a rename: never half-written."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(data, file, indent=2, sort_keys=True, default=str)
            file.write("\n")
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def save_config(config, folder):
    """Saves the effective config as `config.json` in `folder`; returns its path."""
    path = os.path.join(folder, "config.json")
    write_json_atomic(path, {"workflow": type(config).__name__, **dataclasses.asdict(config)})
    return path
