"""How the spec's model does on a person it never saw, measured on ../shared/realdata.

    python bench/real_signers.py [--folds 5] [--epochs 200] [--quick] [--skip-kfold]

Three public recordings share the signs hello, no, thanks, yes (under slightly different folder
names). For each signer: train on the other two, test on this one (the live-demo situation);
then K-fold on each recording alone (the number a single-signer test split gives). One table,
printed as Markdown; `bench/results/real_signers.md` keeps a committed copy.
--quick (CI) runs 2 epochs and 2 folds only to prove the script works: its numbers mean nothing.
"""

import argparse
import datetime
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

from signtrain import data, evaluate  # noqa: E402
from signtrain.train import TrainSettings, cross_validate, train, versions  # noqa: E402

SIGNERS = ("ismokedata_6signs.npz", "mokshavs03_5signs.npz", "akadeepanshu_6signs.npz")
SHARED_SIGNS = ("hello", "no", "thanks", "yes")
# Option sets to compare, all with the spec's architecture; more join here as they are built.
CONFIGURATIONS = {
    "spec defaults": {},
    "--normalize": {"normalize": True},
    "--augment": {"augment": True},
    "--normalize --augment": {"normalize": True, "augment": True},
}


def write_signers(realdata, names, out_dir):
    """One MP_Data tree with the shared signs of the given recordings, folders named by the sign."""
    X_all, actions_all, sequence_names = [], [], []
    for name in names:
        recording = dict(np.load(os.path.join(realdata, name)))  # each array read once, not per row
        keys = [evaluate.name_key(a) for a in recording["actions_raw"]]
        for row, label in enumerate(recording["y"]):
            if keys[label] in SHARED_SIGNS:
                X_all.append(recording["X"][row])
                actions_all.append(keys[label])
                sequence_names.append(f"{len(sequence_names)}")
    return data.write_tree(out_dir, np.stack(X_all), actions_all, sequence_names)


def quietly(function, *args, **kwargs):
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        return function(*args, **kwargs)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--realdata", default=os.path.join(os.path.dirname(REPO), "shared", "realdata"))
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="2 epochs, 2 folds: proves the script runs")
    parser.add_argument("--skip-kfold", action="store_true")
    parser.add_argument("--configs", default=",".join(CONFIGURATIONS),
                        help=f"comma-separated subset of: {', '.join(CONFIGURATIONS)}")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.configs.split(",")]
    unknown = [name for name in chosen if name not in CONFIGURATIONS]
    if unknown:
        parser.error(f"unknown configurations {unknown}; choose from {list(CONFIGURATIONS)}")
    if args.quick:
        args.epochs, args.folds = 2, 2
    rows = []
    with tempfile.TemporaryDirectory() as work:
        os.chdir(work)
        for label in chosen:
            options = CONFIGURATIONS[label]
            cross = []
            for held_out in SIGNERS:
                others = [name for name in SIGNERS if name != held_out]
                train_dir = write_signers(args.realdata, others, os.path.join(work, f"train_{len(rows)}_{held_out}"))
                test_dir = write_signers(args.realdata, [held_out], os.path.join(work, f"test_{len(rows)}_{held_out}"))
                settings = TrainSettings(data=train_dir, epochs=args.epochs, test_data=test_dir, **options)
                _, metrics = quietly(train, settings)
                cross.append((held_out, metrics["external_test"]["accuracy"], metrics["test_accuracy"]))
                print(f"{label}: trained on {' + '.join(others)}, {held_out}: "
                      f"{cross[-1][1]:.1%} (own test split {cross[-1][2]:.1%})", flush=True)
            kfold = []
            if not args.skip_kfold:
                for name in SIGNERS:
                    tree = write_signers(args.realdata, [name], os.path.join(work, f"kfold_{len(rows)}_{name}"))
                    settings = TrainSettings(data=tree, epochs=args.epochs, **options)
                    _, summary = quietly(cross_validate, settings, folds=args.folds)
                    kfold.append((name, summary["mean_test_accuracy"]))
                    print(f"{label}: {args.folds}-fold on {name}: {kfold[-1][1]:.1%}", flush=True)
            rows.append((label, cross, kfold))

    print(f"\n# Real signers: hello, no, thanks, yes ({datetime.date.today()})\n")
    print(f"versions: {json.dumps({k: v for k, v in versions().items() if k != 'platform'})}; epochs {args.epochs}, "
          f"folds {args.folds}{' (QUICK: numbers mean nothing)' if args.quick else ''}\n")
    header = ["configuration"] + [f"test on {name.split('_')[0]}" for name in SIGNERS] + ["cross-signer mean"]
    if not args.skip_kfold:
        header += [f"{args.folds}-fold {name.split('_')[0]}" for name in SIGNERS]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for label, cross, kfold in rows:
        cells = [f"{accuracy:.1%}" for _, accuracy, _ in cross] + [f"{np.mean([c[1] for c in cross]):.1%}"]
        cells += [f"{accuracy:.1%}" for _, accuracy in kfold]
        print("| " + " | ".join([label] + cells) + " |")
    print("\nChance is 25% (4 signs).")


if __name__ == "__main__":
    main()
