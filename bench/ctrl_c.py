"""Ctrl-C at random moments of `signtrain train`: every try must end with exit code 130 (or 0 when
the run finished first) and a message, never a native crash.

    python bench/ctrl_c.py [--tries 40] [--jobs 2] [--earliest 0.5] [--latest 12] [--quick]

Each try trains the demo's synthetic signer (10 signs x 10 sequences, 15 epochs) in its own run
folder and gets SIGINT after a random delay between --earliest (0.5) and --latest (12) seconds (start-up, graph
tracing, epochs, checkpoint writes and the files after the last epoch all get hit), drawn from a
fixed seed. PYTHONFAULTHANDLER is on, so a native crash prints the Python stack it happened in.
Prints one line per try, the count per outcome and last `crashes: K of N`.
"""

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "src"))

from signtrain.data import synth  # noqa: E402


def one_try(index, data_dir, work, delay):
    run_dir = os.path.join(work, f"run{index}")
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "src"), TF_CPP_MIN_LOG_LEVEL="2", PYTHONFAULTHANDLER="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "signtrain.cli", "train", "--data", data_dir, "--out", run_dir, "--epochs", "15",
         "--patience", "100"], cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # A background job inherits SIGINT ignored; a terminal gives the default (tests/test_interrupt.py).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(delay)
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=300)
    code = process.returncode
    finished = os.path.exists(os.path.join(run_dir, "metrics.json"))
    outcome = {130: "interrupted (130)", 0: "finished first (0)"}.get(code, f"CRASH ({code})")
    if outcome.startswith("CRASH") and finished:
        outcome += ", after the run had written all its files"
    last = [line for line in err.splitlines() if line.strip()][-1:] or ["(no message)"]
    if outcome.startswith("CRASH"):
        stack = [line for line in err.splitlines() if line.startswith(("Fatal Python", "  File", "Thread"))]
        last = stack[:12] or last
    return index, delay, outcome, last


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tries", type=int, default=40)
    parser.add_argument("--jobs", type=int, default=2, help="tries at a time")
    parser.add_argument("--earliest", type=float, default=0.5, help="earliest moment of the SIGINT, seconds")
    parser.add_argument("--latest", type=float, default=12.0, help="latest moment of the SIGINT, seconds")
    parser.add_argument("--quick", action="store_true", help="2 tries: proves the script runs")
    args = parser.parse_args()
    if args.quick:
        args.tries, args.jobs = 2, 2
    work = tempfile.mkdtemp(prefix="signtrain_ctrl_c_")
    try:
        data_dir = synth.write_mp_data(os.path.join(work, "MP_Data"), sequences=10, seed=8)
        draw = random.Random(0)
        delays = [round(draw.uniform(args.earliest, args.latest), 2) for _ in range(args.tries)]
        with ThreadPoolExecutor(args.jobs) as pool:
            results = list(pool.map(lambda item: one_try(item[0], data_dir, work, item[1]), enumerate(delays)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    counts = {}
    for index, delay, outcome, last in results:
        counts[outcome] = counts.get(outcome, 0) + 1
        print(f"try {index:>3}: SIGINT at {delay:5.2f} s -> {outcome}: " + " | ".join(line.strip() for line in last))
    print("; ".join(f"{outcome}: {count}" for outcome, count in sorted(counts.items())))
    crashes = sum(count for outcome, count in counts.items() if outcome.startswith("CRASH"))
    print(f"crashes: {crashes} of {len(results)}")
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())
