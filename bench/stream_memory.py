"""Memory and speed of `signtrain train --stream` against the in-memory load, same data, same run.

    python bench/stream_memory.py [--sequences 300] [--epochs 3] [--quick]

Writes a synthetic MP_Data tree (the demo's 10 signs x --sequences, spec shape) into a temp
folder, then runs `signtrain train` on it twice, each in its own process: as loaded into memory,
and with --stream (batches read from the memory-mapped packed cache). A thread in each process
samples its anonymous memory (RssAnon: what the process itself holds, not the file pages the
operating system can drop again) every 20 ms. Prints each run's peak, its seconds per epoch and its
test accuracy (the two must train the same model), the data's size as float32, and last
`ratio: N.NN` (peak anonymous memory in memory / with --stream). Linux only (/proc).
--quick (CI) runs a small tree for 1 epoch only to prove the script works: its numbers mean nothing.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "src"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def anonymous_bytes():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise OSError("no RssAnon in /proc/self/status")


def child(data_dir, out, epochs, streamed):
    """One training run in this process; prints its peak anonymous memory as JSON."""
    from signtrain import cli

    peak, done = [anonymous_bytes()], threading.Event()

    def sample():
        while not done.wait(0.02):
            peak[0] = max(peak[0], anonymous_bytes())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    arguments = ["train", "--data", data_dir, "--epochs", str(epochs), "--out", out]
    code = cli.main(arguments + (["--stream"] if streamed else []))
    done.set()
    sampler.join()
    print(json.dumps({"code": code, "peak": max(peak[0], anonymous_bytes())}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequences", type=int, default=300, help="per sign (default 300: 3,000 sequences)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="10 sequences per sign, 1 epoch")
    parser.add_argument("--child", nargs=3, metavar=("DATA", "OUT", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        data_dir, out, mode = args.child
        return child(data_dir, out, args.epochs, mode == "stream")
    if args.quick:
        args.sequences, args.epochs = 10, 1

    from signtrain.data import synth

    with tempfile.TemporaryDirectory() as work:
        started = time.perf_counter()
        data_dir = synth.write_mp_data(os.path.join(work, "MP_Data"), sequences=args.sequences, seed=0)
        sequences = 10 * args.sequences
        print(f"{sequences} synthetic sequences (30, 1662) written in {time.perf_counter() - started:.0f} s: "
              f"{sequences * 30 * 1662 * 4 / 2**20:.0f} MiB as float32; {args.epochs} epochs each")
        results = {}
        for mode in ("in memory", "stream"):
            out = os.path.join(work, mode.replace(" ", "_"))
            started = time.perf_counter()
            finished = subprocess.run([sys.executable, __file__, "--epochs", str(args.epochs), "--child", data_dir,
                                       out, mode.replace(" ", "_")], capture_output=True, text=True)
            seconds = time.perf_counter() - started
            lines = finished.stdout.strip().splitlines()
            if finished.returncode != 0 or not lines or json.loads(lines[-1])["code"] != 0:
                raise SystemExit(f"{mode} run failed:\n{finished.stdout[-3000:]}\n{finished.stderr[-3000:]}")
            metrics = json.load(open(os.path.join(out, "metrics.json")))
            results[mode] = json.loads(lines[-1])["peak"]
            print(f"{mode:>9}: peak anonymous memory {results[mode] / 2**20:.0f} MiB; "
                  f"{metrics['train_seconds'] / metrics['epochs_run']:.2f} s/epoch; whole run {seconds:.0f} s "
                  f"(load, check, train, evaluate); test accuracy {metrics['test_accuracy']:.1%}", flush=True)
        if args.quick:
            print("QUICK: a small tree for 1 epoch, to prove the script runs; the numbers mean nothing")
        print(f"ratio: {results['in memory'] / results['stream']:.2f}")


if __name__ == "__main__":
    main()
