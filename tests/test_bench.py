"""The benchmarks run (quick mode, numbers meaningless): they must not rot between real runs."""

import os
import subprocess
import sys

from conftest import REPO, realdata_file


def test_real_signers_quick(tmp_path):
    realdata_file("ismokedata_6signs.npz")  # fails loudly under CI when ../shared is missing
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "bench", "real_signers.py"), "--quick", "--skip-kfold",
         "--configs", "spec defaults", "--jobs", "2"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    table = [line for line in result.stdout.splitlines() if line.startswith("| spec defaults |")]
    assert len(table) == 1 and table[0].count("%") == 4  # 3 held-out signers and their mean
    assert "QUICK: numbers mean nothing" in result.stdout


def _quick(tmp_path, script, *flags):
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "bench", script), "--quick", *flags],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert lines[-1].startswith("ratio: ") and float(lines[-1].split()[1]) > 0
    return result.stdout


def test_train_speed_quick(tmp_path):
    stdout = _quick(tmp_path, "train_speed.py")
    assert "naive:" in stdout and "signtrain:" in stdout and "floor" in stdout


def test_load_speed_quick(tmp_path):
    stdout = _quick(tmp_path, "load_speed.py")
    assert "from the cache" in stdout and "QUICK" in stdout
