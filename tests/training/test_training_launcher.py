"""The local launcher and the watchdog, with plain Python workers (no TensorFlow: fast)."""

import json
import subprocess
import sys
import textwrap
import time

from keras_transformer.training import watchdog
from keras_transformer.training.launch import main as launch_main
from keras_transformer.training.launcher import free_ports, launch_workers, local_tf_configs


def python(code):
    return [sys.executable, "-c", textwrap.dedent(code)]


def test_free_ports_and_tf_configs():
    ports = free_ports(3)
    assert len(set(ports)) == 3
    configs = local_tf_configs(2)
    assert configs[0]["cluster"] == configs[1]["cluster"]
    assert [c["task"]["index"] for c in configs] == [0, 1]
    assert all(w.startswith("127.0.0.1:") for w in configs[0]["cluster"]["worker"])


def test_every_worker_gets_its_own_tf_config(tmp_path):
    result = launch_workers(
        python("""
            import json, os
            config = json.loads(os.environ["TF_CONFIG"])
            print("index", config["task"]["index"], "of", len(config["cluster"]["worker"]))
        """),
        num_workers=3,
        timeout=60,
        log_dir=str(tmp_path),
    )
    assert result.ok, result.summary
    assert [result.log(i).strip() for i in range(3)] == [f"index {i} of 3" for i in range(3)]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"worker-{i}.log" for i in range(3)]


def test_a_failing_worker_stops_the_others_after_the_grace_period():
    start = time.monotonic()
    result = launch_workers(
        python("""
            import json, os, sys, time
            if json.loads(os.environ["TF_CONFIG"])["task"]["index"] == 1:
                sys.exit("worker 1: RuntimeError: broken on purpose")
            time.sleep(60)
        """),
        num_workers=2,
        timeout=60,
        grace_seconds=1,
    )
    assert time.monotonic() - start < 20
    assert result.returncodes[1] == 1
    assert result.returncodes[0] == -9 and result.killed == [0]
    assert "worker 1 exited with code 1" in result.summary
    assert "broken on purpose" in result.summary
    assert "worker 0 exited with code -9 (killed by SIGKILL)" in result.summary
    assert "another worker failed" in result.summary


def test_timeout_kills_every_worker():
    result = launch_workers(python("import time; time.sleep(60)"), num_workers=2, timeout=1.5)
    assert result.timed_out and sorted(result.killed) == [0, 1]
    assert result.seconds < 20
    assert result.summary.startswith("timed out after 1.5 s")


def test_worker_env_and_the_command_line_entry_point(capsys):
    code = launch_main(
        ["--workers", "2", "--timeout", "60", "--"]
        + python("""
            import json, os
            print("task", json.loads(os.environ["TF_CONFIG"])["task"]["index"])
        """)
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "[worker 0] task 0" in out and "[worker 1] task 1" in out
    assert "worker 1 exited with code 0" in out
    result = launch_workers(
        python("import os; print(os.environ['EXTRA'])"),
        num_workers=2,
        timeout=60,
        worker_env=lambda i: {"EXTRA": f"x{i}"},
    )
    assert [result.log(i).strip() for i in range(2)] == ["x0", "x1"]


# The watchdog needs no TensorFlow: load its module alone, as the scripts below do.
LOAD_WATCHDOG = f"""
import importlib.util
spec = importlib.util.spec_from_file_location("watchdog", {watchdog.__file__!r})
watchdog = importlib.util.module_from_spec(spec)
spec.loader.exec_module(watchdog)
"""


def test_watchdog_kills_a_stuck_process_with_a_message():
    script = LOAD_WATCHDOG + textwrap.dedent("""
        import time
        dog = watchdog.Watchdog(peers=["127.0.0.1:1"])
        dog.arm(5, "waiting for nothing")
        for _ in range(3):
            time.sleep(0.5)
            dog.kick()  # progress: no kill yet
        print("stuck now", flush=True)
        time.sleep(60)
    """)
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    elapsed = time.monotonic() - start
    assert done.returncode == -9
    assert "stuck now" in done.stdout
    assert "watchdog: waiting for nothing (no progress for 5 s)" in done.stderr
    assert "not answering: 127.0.0.1:1" in done.stderr
    assert elapsed < 30


def test_watchdog_disarmed_or_closed_does_nothing():
    script = LOAD_WATCHDOG + textwrap.dedent("""
        import json, time
        dog = watchdog.Watchdog()
        dog.arm(1, "never fires")
        dog.disarm()
        time.sleep(2)
        dog.close()
        print(json.dumps("alive"))
    """)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-500:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == "alive"
