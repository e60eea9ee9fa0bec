"""`--config` files (YAML, JSON), flags and SageMaker defaults: typed, checked, one-line errors."""

import argparse
import json
import os
import subprocess
import sys

import pytest

from workflows import export, pretrain, transfer
from workflows.config import ConfigError, add_arguments, config_from_args

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse(config_class, *argv):
    """The namespace the workflow command gives `config_from_args` for these arguments."""
    parser = argparse.ArgumentParser()
    add_arguments(parser, config_class)
    return parser.parse_args(list(argv))


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def from_file(config_class, path, *argv, defaults=None):
    return config_from_args(config_class, parse(config_class, "--config", path, *argv), defaults)


def test_yaml_values_become_the_field_types(tmp_path):
    path = write(
        tmp_path / "run.yaml",
        "learning_rate: 1e-3\n"  # PyYAML: the string '1e-3'
        "steps: 1e3\n"  # also a string; an integral number
        "dropout: 0\n"  # an int for a float field
        "mixed_precision: true\n"  # a bool, as configs wrote before it took a name
        "num_layers: 2.0\n"  # an integral float for an int | None field
        "vocabulary: null\n"
        "prompt: 2024\n",  # an int for a str field
    )
    config = from_file(pretrain.Config, path)
    assert config.learning_rate == 0.001 and type(config.learning_rate) is float
    assert config.steps == 1000 and type(config.steps) is int
    assert config.dropout == 0.0 and type(config.dropout) is float
    assert config.mixed_precision == "bfloat16"
    assert config.num_layers == 2 and type(config.num_layers) is int
    assert config.vocabulary is None
    assert config.prompt == "2024"


@pytest.mark.parametrize(("text", "value"), [("on", "on"), ("off", "off"), ("'auto'", "auto")])
def test_yaml_on_and_off_name_the_jit_compile_setting(tmp_path, text, value):
    # YAML 1.1 reads a bare `on` / `off` as a boolean: the setting still means what it says.
    config = from_file(pretrain.Config, write(tmp_path / "run.yaml", f"jit_compile: {text}\n"))
    assert config.jit_compile == value


def test_json_values_become_the_field_types(tmp_path):
    values = {
        "steps": 3.0,
        "batch_size": "8",
        "mixed_precision": False,
        "hidden_dim": None,
        "max_seconds": "2.5",
        "objective": "masked",
    }
    config = from_file(pretrain.Config, write(tmp_path / "run.json", json.dumps(values)))
    assert (config.steps, config.batch_size, config.hidden_dim) == (3, 8, None)
    assert type(config.steps) is int
    assert config.mixed_precision == "float32"
    assert config.max_seconds == 2.5
    assert config.objective == "masked"
    config = from_file(
        pretrain.Config, write(tmp_path / "b.json", '{"mixed_precision": "float16"}')
    )
    assert config.mixed_precision == "float16"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("steps: ten", "steps: expected an integer, got 'ten'"),
        ("steps: 3.5", "steps: expected an integer, got 3.5"),
        ("steps: true", "steps: expected an integer, got True"),
        ("steps: null", "steps: expected an integer, got null"),
        ("learning_rate: fast", "learning_rate: expected a number, got 'fast'"),
        ("learning_rate: .inf", "learning_rate: expected a number, got inf"),
        (
            "mixed_precision: half",
            "mixed_precision: expected one of float32, bfloat16, float16, got 'half'",
        ),
        (
            "mixed_precision: 1",
            "mixed_precision: expected one of float32, bfloat16, float16, got '1'",
        ),
        ("jit_compile: maybe", "jit_compile: expected one of auto, on, off, got 'maybe'"),
        ("objective: both", "objective: expected one of causal, masked, got 'both'"),
        ("corpus: [a, b]", "corpus: expected a string, got ['a', 'b']"),
        ("prompt: 0.5", "prompt: expected a string, got 0.5"),
        ("stpes: 10", "Unknown settings for Config: ['stpes']"),
    ],
)
def test_a_bad_value_names_the_file_the_key_and_the_type(tmp_path, text, message):
    path = write(tmp_path / "x.yaml", text + "\n")
    with pytest.raises(ConfigError) as caught:
        from_file(pretrain.Config, path)
    assert str(caught.value).startswith(f"config file {path}: ")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_choices_and_optional_fields_of_other_workflows(tmp_path):
    path = write(tmp_path / "x.json", '{"pooling": "max"}')
    expected = "pooling: expected one of auto, cls, pooler, mean, got 'max'"
    with pytest.raises(ConfigError, match=expected):
        from_file(transfer.Config, path)
    config = from_file(
        export.Config, write(tmp_path / "e.yaml", "pretrained: minilm\nversion: '7'")
    )
    assert (config.pretrained, config.version) == ("minilm", 7)
    with pytest.raises(ConfigError, match="pretrained: expected one of minilm, got 'bert'"):
        from_file(export.Config, write(tmp_path / "f.yaml", "pretrained: bert"))


def test_flags_override_the_file_and_defaults_are_checked_too(tmp_path):
    path = write(tmp_path / "x.yaml", "steps: 5\nlearning_rate: 1e-2\n")
    config = from_file(pretrain.Config, path, "--steps", "7")
    assert (config.steps, config.learning_rate) == (7, 0.01)
    config = from_file(pretrain.Config, path, defaults={"output_dir": "/m", "eval_batches": "3"})
    assert (config.output_dir, config.eval_batches) == ("/m", 3)
    with pytest.raises(
        ConfigError, match="^SageMaker default: steps: expected an integer, got 'x'"
    ):
        config_from_args(pretrain.Config, parse(pretrain.Config), defaults={"steps": "x"})


def test_a_file_that_does_not_parse_is_one_clear_error(tmp_path):
    with pytest.raises(ConfigError, match=r"not valid YAML at line 2 .*Fix the file's syntax"):
        from_file(pretrain.Config, write(tmp_path / "x.yaml", "steps: 1\n  bad: [\n"))
    with pytest.raises(ConfigError, match="not valid JSON"):
        from_file(pretrain.Config, write(tmp_path / "x.json", '{"steps": 1,}'))
    with pytest.raises(ConfigError, match="must hold a mapping of settings"):
        from_file(pretrain.Config, write(tmp_path / "y.yaml", "- steps\n"))


def run_command(*args):
    environ = {k: v for k, v in os.environ.items() if k not in ("TF_CONFIG", "SM_HOSTS")}
    environ = {k: v for k, v in environ.items() if not k.startswith("SM_")}
    environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return subprocess.run(
        [sys.executable, "-m", "workflows", *args],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


def our_lines(stderr):
    """stderr without TensorFlow's start-up log lines (absl's `I0000 ...` and its WARNING)."""
    return [
        line
        for line in stderr.splitlines()
        if line.strip()
        and not line.startswith(("I0000", "W0000", "E0000"))
        and not line.startswith("WARNING: All log messages before absl::InitializeLog()")
    ]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("x.yaml", "steps: ten\n", "steps: expected an integer, got 'ten'"),
        ("x.json", '{"steps": 10, "objective": "both"}', "objective: expected one of causal"),
    ],
)
def test_the_command_exits_2_with_one_line(tmp_path, name, text, message):
    path = write(tmp_path / name, text)
    out = run_command("pretrain", "--config", path, "--output-dir", str(tmp_path / "run"))
    assert out.returncode == 2, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    lines = our_lines(out.stderr)
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(f"error: config file {path}: ") and message in lines[0]
    assert not (tmp_path / "run").exists()
