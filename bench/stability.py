"""Is a training good every time, not on a lucky seed? The spec's recipe with and without exact
BatchNorm statistics (signtrain.training.precise_bn), over several seeds, on three data sets.

    python bench/stability.py [--seeds 42,1,2,3,4,5] [--jobs 2] [--quick]

Data sets: the demo's synthetic signer (what `make demo` trains on), lujamanandhar (10 real signs,
one person) and one cross-signer cell of ../shared/realdata (hello/no/thanks/yes: trained on
ismokedata and mokshavs03, scored on akadeepanshu, a person the model never saw). Each
(data set, variant, seed) is one `signtrain train` with every spec default; the variants (VARIANTS)
differ only in the BatchNorm statistics, the batch order and (opt-in) the monitor. Printed per
cell: mean, sd and minimum of the test accuracy over the seeds, epochs run, seconds, and the
validation swing (sd of validation accuracy over the last 10 epochs). The verdict lines are the issue's targets. --quick (CI): 2 epochs, 2 seeds, numbers
meaningless.
"""

import datetime
import json
import os
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "src"))
sys.path.insert(0, os.path.join(REPO, "bench"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from real_signers import quietly, realdata_parser, run_all, write_signers  # noqa: E402
from realdata_runs import unpack  # noqa: E402
from signtrain.report import diagnose  # noqa: E402
from signtrain.data import synth
from signtrain.training.train import TrainSettings, train, versions  # noqa: E402

# "cross-signer": trained on ismokedata + mokshavs03, scored on akadeepanshu (the cell); the
# other two held-out signers are there to check a finding on that cell.
SIGNERS = ("ismokedata_6signs.npz", "mokshavs03_5signs.npz", "akadeepanshu_6signs.npz")
HELD_OUT = {"cross-signer": SIGNERS[2], "cross-signer-ismokedata": SIGNERS[0], "cross-signer-mokshavs03": SIGNERS[1]}
DATASETS = ("demo", "lujamanandhar", *HELD_OUT)
# "plain": the spec's recipe as signtrain ran it before (--no-precise-bn); "exact statistics, one
# order": precise BatchNorm alone, the batch order drawn once; "default": precise BatchNorm and a new
# seeded batch order every epoch (what signtrain train does now); "default --monitor val_loss": the
# epoch chosen by validation loss instead of accuracy (opt-in: the spec's monitor is accuracy).
VARIANTS = {"plain": {"precise_bn": False}, "exact statistics, one order": {"precise_bn": True, "reshuffle": False},
            "default": {"precise_bn": True}, "default --monitor val_loss": {"monitor": "val_loss"}}


def write_data(dataset, realdata, work):
    """(training MP_Data, held-out recording or None) for one data set, written under work."""
    if dataset == "demo":
        return synth.write_mp_data(os.path.join(work, "MP_Data"), seed=0), None  # subcommands.demo_data's set
    if dataset == "lujamanandhar":
        return unpack(os.path.join(realdata, "lujamanandhar_10signs.npz"), os.path.join(work, "MP_Data")), None
    held_out = HELD_OUT[dataset]
    return (write_signers(realdata, [name for name in SIGNERS if name != held_out], os.path.join(work, "train")),
            write_signers(realdata, [held_out], os.path.join(work, "test")))


def run_task(task):
    """One training; returns its numbers. Self-contained, so that tasks can run in other processes."""
    dataset, variant, seed, realdata, epochs = task
    with tempfile.TemporaryDirectory() as work:
        os.chdir(work)
        train_dir, test_dir = write_data(dataset, realdata, work)
        settings = TrainSettings(data=train_dir, epochs=epochs, seed=seed, test_data=test_dir, **VARIANTS[variant])
        _, metrics = quietly(train, settings)
        with open(os.path.join(work, "runs", "train", "exp", "results.csv")) as handle:
            header = handle.readline().strip().split(",")
            column = header.index("val_categorical_accuracy")
            val = [float(line.split(",")[column]) for line in handle if line.strip()]
    result = {
        "test_accuracy": metrics["external_test"]["accuracy"] if test_dir else metrics["test_accuracy"],
        "own_test_accuracy": metrics["test_accuracy"],
        "epochs": metrics["epochs_run"],
        "seconds": metrics["train_seconds"],
        "swing": diagnose.validation_swing(val),
        "unstable": any(item["code"] == "UNSTABLE_TRAINING" for item in metrics["diagnostics"]),
    }
    print(f"{dataset} {variant} seed {seed}: test {result['test_accuracy']:.1%}, {result['epochs']} epochs, "
          f"{result['seconds']:.0f} s, swing {result['swing']:.3f}", flush=True)
    return result


def summary_row(runs):
    accuracy = np.array([run["test_accuracy"] for run in runs])
    return {"mean": accuracy.mean(), "sd": accuracy.std(ddof=1) if len(accuracy) > 1 else 0.0,
            "min": accuracy.min(), "epochs": np.mean([run["epochs"] for run in runs]),
            "seconds": np.mean([run["seconds"] for run in runs]),
            "swing": np.mean([run["swing"] for run in runs]),
            "unstable": sum(run["unstable"] for run in runs), "runs": len(runs)}


def format_report(rows, seeds):
    lines = ["| data set | variant | test accuracy mean | sd | min | epochs | seconds | val swing | "
             "flagged unstable |", "|---|---|---|---|---|---|---|---|---|"]
    for (dataset, variant), row in rows.items():
        lines.append(f"| {dataset} | {variant} | {row['mean']:.1%} | {row['sd'] * 100:.1f} | {row['min']:.1%} | "
                     f"{row['epochs']:.0f} | {row['seconds']:.0f} | {row['swing']:.3f} | "
                     f"{row['unstable']}/{row['runs']} |")
    lines.append("")
    lines.append(f"Targets (default against plain, {len(seeds)} seeds): sd at most half, mean not lower by more "
                 f"than 1 point, no demo seed below 80%:")
    for dataset in dict.fromkeys(d for d, _ in rows):
        plain, precise = rows.get((dataset, "plain")), rows.get((dataset, "default"))
        if not plain or not precise:
            continue
        sd_ok = precise["sd"] <= plain["sd"] / 2
        mean_ok = precise["mean"] >= plain["mean"] - 0.01
        floor_ok = dataset != "demo" or precise["min"] >= 0.8
        floor = f", min {precise['min']:.1%} ({'met' if floor_ok else 'NOT met'})" if dataset == "demo" else ""
        lines.append(f"- {dataset}: sd {plain['sd'] * 100:.1f} -> {precise['sd'] * 100:.1f} "
                     f"({'met' if sd_ok else 'NOT met'}), mean {plain['mean']:.1%} -> {precise['mean']:.1%} "
                     f"({'met' if mean_ok else 'NOT met'}){floor}")
    return "\n".join(lines)


def main():
    parser = realdata_parser(__doc__)
    parser.add_argument("--seeds", default="42,1,2,3,4,5")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--datasets", default="demo,lujamanandhar,cross-signer", help=f"of {', '.join(DATASETS)}")
    parser.add_argument("--variants", default=";".join(VARIANTS),
                        help=f"separated by semicolons (names hold commas): of {'; '.join(VARIANTS)}")
    parser.add_argument("--jobs", type=int, default=1, help="trainings at a time, each in its own process")
    parser.add_argument("--quick", action="store_true", help="2 epochs, 2 seeds, demo data: proves the script runs")
    args = parser.parse_args()
    seeds = [int(seed) for seed in args.seeds.split(",")]
    datasets = [name.strip() for name in args.datasets.split(",")]
    if args.quick:
        args.epochs, seeds, datasets = 2, seeds[:2], ["demo"]
    variants = [name.strip() for name in args.variants.split(";")]
    unknown = [name for name in datasets if name not in DATASETS] + [name for name in variants if name not in VARIANTS]
    if unknown:
        parser.error(f"unknown data sets or variants {unknown}; choose from {list(DATASETS)} and {list(VARIANTS)}")
    realdata = os.path.abspath(args.realdata)
    tasks = [(dataset, variant, seed, realdata, args.epochs) for dataset in datasets for variant in variants
             for seed in seeds]
    started = time.perf_counter()
    results = run_all(run_task, tasks, args.jobs)
    rows = {(dataset, variant): summary_row([results[(dataset, variant, seed, realdata, args.epochs)]
                                             for seed in seeds])
            for dataset in datasets for variant in variants}
    print(f"\n# Stability over seeds ({datetime.date.today()})\n")
    print(f"versions: {json.dumps({k: v for k, v in versions().items() if k != 'platform'})}; seeds {seeds}, "
          f"epochs {args.epochs}{' (QUICK: numbers mean nothing)' if args.quick else ''}; "
          f"{time.perf_counter() - started:.0f} s with --jobs {args.jobs}\n")
    print(format_report(rows, seeds))


if __name__ == "__main__":
    main()
