"""Typed, frozen workflow configs: from flags or a JSON/YAML file, saved beside each run."""

import argparse
import dataclasses
import json
import math
import os
import tempfile
import types
import typing

from keras_transformer.training.compilation import JIT_COMPILE
from keras_transformer.training.precision import PRECISIONS


class ConfigError(ValueError):
    """A setting whose value does not fit its field: names the source, the key and the type."""


def setting(default, help, choices=None, legacy=None):
    """A config field with a default, a help text and optional choices (for the CLI).

    `legacy` maps values that older configs wrote to today's (`{True: "bfloat16"}` for a
    setting that was a bool): files saved before the change still load.
    """
    metadata = {"help": help}
    if choices:
        metadata["choices"] = choices
    if legacy:
        metadata["legacy"] = legacy
    return dataclasses.field(default=default, metadata=metadata)


def precision_setting():
    """The `--mixed-precision` setting of every training workflow (`float32` by default)."""
    return setting(
        "float32",
        "training precision: float32, bfloat16 (mixed_bfloat16: Ampere GPUs, TPUs, recent "
        "CPUs) or float16 (mixed_float16 with dynamic loss scaling: GPUs before Ampere)",
        PRECISIONS,
        legacy={True: "bfloat16", False: "float32"},
    )


def jit_compile_setting():
    """The `--jit-compile` setting of every training workflow (`auto`: on where a GPU is)."""
    return setting(
        "auto",
        "XLA-compile the training step: auto (on where a GPU is present), on, off",
        JIT_COMPILE,
        legacy={True: "on", False: "off"},  # YAML 1.1 reads `on` / `off` as booleans
    )


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
    """Reads a JSON or YAML mapping of settings.

    Raises:
        FileNotFoundError: no such file.
        ConfigError: the file does not parse, or holds something other than a mapping.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Config file not found: {path}")
    with open(path, encoding="utf-8") as file:
        text = file.read()
    if path.endswith((".yaml", ".yml")):
        import yaml

        try:
            values = yaml.safe_load(text)
        except yaml.YAMLError as error:
            where = getattr(error, "problem_mark", None)
            line = f" at line {where.line + 1}" if where is not None else ""
            raise ConfigError(
                f"config file {path}: not valid YAML{line} "
                f"({getattr(error, 'problem', None) or error}). Fix the file's syntax."
            ) from None
    else:
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(
                f"config file {path}: not valid JSON (line {error.lineno}: {error.msg}). Fix the "
                "file's syntax, or name it .yaml for YAML."
            ) from None
    if not isinstance(values, dict):
        raise ConfigError(
            f"config file {path}: must hold a mapping of settings (key: value lines), not "
            f"{type(values).__name__}."
        )
    return values


_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")
_KIND_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _show(value):
    return "null" if value is None else repr(value)


def field_kind(hint):
    """`(kind, optional)` of a field's type hint: `int | None` -> `(int, True)`."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0], len(args) < len(typing.get_args(hint))
    return hint, False


def convert_value(kind, value):
    """`value` as a `kind` (int, float, bool or str), or raises `ValueError(expected ...)`.

    - int: ints, integral floats (`3.0`, as JSON writers give), strings of either (`"1e3"`).
    - float: ints, floats and number strings (PyYAML reads `1e-3` as a string); finite only.
    - bool: booleans, `0` / `1`, and `true/false/yes/no/on/off` strings (any case).
    - str: strings, and ints (YAML reads `name: 2024` as an int).
    """
    expected = ValueError(f"expected {_KIND_NAMES.get(kind, kind.__name__)}, got {_show(value)}")
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise expected
    if kind is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        raise expected
    if kind in (int, float):
        number = value
        if isinstance(value, str):
            text = value.strip()
            try:
                number = int(text) if kind is int and text.lstrip("+-").isdigit() else float(text)
            except ValueError:
                raise expected from None
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise expected
        if not math.isfinite(number):
            raise expected
        if kind is float:
            return float(number)
        if isinstance(number, float) and not number.is_integer():
            raise expected
        return int(number)
    if isinstance(value, kind):
        return value
    raise expected


def check_value(field, hint, value):
    """`value` converted to the field's type and checked against its `choices`."""
    kind, optional = field_kind(hint)
    if value is None:
        if optional:
            return None
        raise ValueError(f"expected {_KIND_NAMES.get(kind, kind.__name__)}, got null")
    legacy = field.metadata.get("legacy", {})
    if isinstance(value, bool) and value in legacy:  # a bool only: `1 == True` in a dict
        value = legacy[value]
    value = convert_value(kind, value)
    choices = field.metadata.get("choices")
    if choices and value not in choices:
        raise ValueError(f"expected one of {', '.join(map(str, choices))}, got {_show(value)}")
    return value


def build_config(config_class, values, sources=None):
    """Builds a config from a mapping: unknown settings refused, each value typed and checked.

    Args:
        config_class: a dataclass whose fields are settings (`setting(...)`).
        values: dict. Setting name -> value (strings, numbers, booleans or None).
        sources: dict or None. Setting name -> where its value came from (e.g.
            `"config file x.yaml"`, `"--steps"`), for error messages.

    Raises:
        ConfigError: an unknown setting, or a value that does not fit its field, e.g.
            `config file x.yaml: steps: expected an integer, got 'ten'`.
    """
    sources = sources or {}
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        where = sorted({sources[name] for name in unknown if name in sources})
        raise ConfigError(
            f"{'; '.join(where) + ': ' if where else ''}Unknown settings for "
            f"{config_class.__name__}: {unknown}. Known settings: {sorted(fields)}."
        )
    hints = typing.get_type_hints(config_class)
    typed = {}
    for name, value in values.items():
        try:
            typed[name] = check_value(fields[name], hints[name], value)
        except ValueError as error:
            source = sources.get(name)
            prefix = f"{source}: " if source and not source.startswith("--") else ""
            label = source if source and source.startswith("--") else name
            raise ConfigError(f"{prefix}{label}: {error}") from None
    return config_class(**typed)


# Command-line flags that are not settings of a workflow's config.
NOT_SETTINGS = ("workflow", "workers", "worker_index")


def config_from_args(config_class, namespace, defaults=None):
    """Merges `defaults`, a `--config` file and the flags given (flags win) into a config.

    Every value, whatever its source, is converted and checked by `build_config`.
    """
    values = dict(defaults or {})
    sources = dict.fromkeys(values, "SageMaker default")
    file_path = getattr(namespace, "_config_file", None)
    if file_path:
        from_file = read_config_file(file_path)
        values.update(from_file)
        sources.update(dict.fromkeys(from_file, f"config file {file_path}"))
    flags = {k: v for k, v in vars(namespace).items() if not k.startswith("_")}
    for name in NOT_SETTINGS:
        flags.pop(name, None)
    values.update(flags)
    sources.update({name: "--" + name.replace("_", "-") for name in flags})
    return build_config(config_class, values, sources)


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


def workflow_name(config):
    """The command-line name of a config's workflow (`"transfer"`, `"as-is"`, ...).

    A config class names it in a `workflow: ClassVar[str]`; without one, its module's name.
    """
    config_class = config if isinstance(config, type) else type(config)
    return getattr(config_class, "workflow", None) or config_class.__module__.rsplit(".", 1)[-1]


def save_config(config, folder):
    """Saves the effective config as `config.json` in `folder`; returns its path.

    The file holds `"workflow"` (its command-line name) and every setting that applies: a
    config may leave some out by naming them in an `unused_settings()` method (e.g. a
    classifier's `dataset_config` when the dataset is a CSV file).
    """
    settings = dataclasses.asdict(config)
    unused = getattr(config, "unused_settings", None)
    for name in unused() if unused else ():
        settings.pop(name, None)
    path = os.path.join(folder, "config.json")
    write_json_atomic(path, {"workflow": workflow_name(config), **settings})
    return path
