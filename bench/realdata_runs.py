"""Train with the spec's defaults on every recording in ../shared/realdata and print one table.

    python bench/realdata_runs.py [--epochs N] [--only NAME]

For each recording: test accuracy with its 95% interval, epochs, seconds, and the diagnostics the
run printed. Recordings in another layout are first tried as a user would (refused, with the
message) and then trained with --any-layout. Runs go to a temp folder; nothing is kept.
"""

import argparse
import glob
import io
import json
import os
import sys
import tempfile
from contextlib import redirect_stderr, redirect_stdout

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "src"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from signtrain import cli  # noqa: E402
from signtrain.data import dataset as data


def unpack(npz_path, out_dir):
    """The layout of ../shared/realdata/unpack.py, reading the arrays once."""
    recording = np.load(npz_path)
    actions = [str(a) for a in recording["actions_raw"]]
    return data.write_tree(out_dir, recording["X"], [actions[int(label)] for label in recording["y"]],
                           recording["seq_ids"])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--realdata", default=os.path.join(os.path.dirname(REPO), "shared", "realdata"))
    parser.add_argument("--epochs", default="200")
    parser.add_argument("--only", default=None, help="a substring of one recording's file name")
    args = parser.parse_args()
    rows = []
    for npz_path in sorted(glob.glob(os.path.join(args.realdata, "*.npz"))):
        name = os.path.basename(npz_path)
        if args.only and args.only not in name:
            continue
        with tempfile.TemporaryDirectory() as work:
            data_dir = unpack(npz_path, os.path.join(work, "MP_Data"))
            out = os.path.join(work, "run")
            argv = ["train", "--data", data_dir, "--out", out, "--epochs", args.epochs]
            log = io.StringIO()
            with redirect_stdout(log), redirect_stderr(log):
                code = cli.main(argv)
            refused = ""
            if code == 2:
                refused = log.getvalue().strip().splitlines()[-1]
                log = io.StringIO()
                with redirect_stdout(log), redirect_stderr(log):
                    code = cli.main(argv + ["--any-layout"])
            if code != 0:
                rows.append((name, f"failed: {log.getvalue().strip().splitlines()[-1]}"))
                continue
            metrics = json.load(open(os.path.join(out, "metrics.json")))
        low, high = metrics["test_accuracy_ci95"]
        rows.append((name, refused, metrics, low, high))
        print(f"## {name}")
        if refused:
            print(f"refused by default: {refused}\nthen trained with --any-layout:")
        print(f"test accuracy {metrics['test_accuracy']:.1%} (95% interval {low:.0%}-{high:.0%}), "
              f"{metrics['epochs_run']} epochs, {metrics['train_seconds']:.0f} s")
        for item in metrics["diagnostics"] or [{"severity": "", "code": "", "message": "found nothing"}]:
            print(f"  {item['severity']} {item['code']}: {item['message']}")
        print(flush=True)


if __name__ == "__main__":
    main()
