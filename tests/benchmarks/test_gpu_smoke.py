"""benchmarks.gpu_smoke: a tiny run prints the devices, the placement and the table; bad input."""

import re

import pytest

from benchmarks import gpu_smoke


def test_a_tiny_run_says_no_gpu_and_reports_placement_and_speed(capsys):
    argv = "--steps 1 --warmup 0 --batch-size 2 --seq-len 8 --peak-size 512 --dtypes"
    gpu_smoke.main([*argv.split(), "float32,mixed_float16"])
    out = capsys.readouterr().out
    assert "Devices:\n  no GPU found: running on CPU\n" in out
    assert "get_strategy('auto') here: default, devices ['/device:CPU:0']" in out
    placed = re.findall(r"^(\S+): optimizer (\w+), .* step ops placed: (.*)$", out, re.M)
    assert [(p, o) for p, o, _ in placed] == [
        ("float32", "AdamW"),
        ("mixed_float16", "LossScaleOptimizer"),  # compile adds loss scaling under float16
    ]
    for _, _, where in placed:
        match = re.fullmatch(r"/device:CPU:0: (\d+) ops", where)
        assert match and int(match[1]) > 1000, where  # the whole step, on the one CPU
    rows = re.findall(
        r"^\| (float32|mixed_float16) +\| +([\d.]+) \| +([\d.]+) \|.*\| +([\d.]+)% \| +(\S+) \|$",
        out,
        re.M,
    )
    assert [r[0] for r in rows] == ["float32", "mixed_float16"]
    for _, ms, steps, percent, _ in rows:
        assert float(ms) > 0 and float(steps) > 0 and 0 < float(percent) < 100
    assert rows[0][4] == "-" and float(rows[1][4]) > 0  # the float16 row's loss scale
    assert out.rstrip().endswith(
        "no GPU found: running on CPU: these figures are the CPU's, not a GPU's."
    )


@pytest.mark.parametrize(
    "argv, message",
    [
        ("--steps 0", "--steps must be at least 1. Received: 0"),
        (
            "--dtypes float32,float8",
            "--dtypes must list some of float32,mixed_bfloat16,mixed_float16. Received: ['float8']",
        ),
        ("--seq-len 2000", "--seq-len must be at most 1024"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as stop:
        gpu_smoke.main(argv.split())
    assert stop.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("gpu_smoke.py: error: ") or "error: " in error
    assert message in error
