"""The benchmarks run (quick mode, numbers meaningless): they must not rot between real runs."""

import os
import subprocess
import sys

from conftest import REPO, realdata_file


def test_real_signers_quick(tmp_path):
    realdata_file("ismokedata_6signs.npz")  # fails loudly under CI when ../shared is missing
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "bench", "real_signers.py"), "--quick", "--skip-kfold",
         "--configs", "spec defaults"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    table = [line for line in result.stdout.splitlines() if line.startswith("| spec defaults |")]
    assert len(table) == 1 and table[0].count("%") == 4  # 3 held-out signers and their mean
    assert "QUICK: numbers mean nothing" in result.stdout
