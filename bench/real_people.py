"""Accuracy on a person the model never saw, on ../shared/realdata, option beside option.

    python bench/real_people.py [--parts a,b,curve,c] [--configs NAME;NAME] [--seeds 3] [--jobs 2] [--quick]

(a) hello/no/thanks/yes: leave-one-out over the three signers that have them (train on two
    recordings, each its own --data, test on the third);
(b) hello/iloveyou/thanks: leave-one-out over the six signers that have them; "curve": accuracy on
    the held-out person against the number of people trained on (1, 2, 3, 5; the others drawn per
    held-out person with a fixed seed);
(c) 5-fold within one recording, on each of those recordings and on lujamanandhar (10 signs): what
    an option costs where the test rows come from the person it trained on.
Every training is the spec's (200 epochs, EarlyStopping patience 30, batch 16, the spec's layers),
through signtrain's own TrainSettings; one table per part, mean +- sd over the seeds, seconds per
epoch, and the issue's verdict lines. --quick (CI): 2 epochs, 1 seed, 2 folds: numbers mean nothing.
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
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from real_signers import quietly, realdata_parser, run_all  # noqa: E402
from signtrain.data import dataset as data  # noqa: E402
from signtrain.data import names, recordings as recordings_lib  # noqa: E402
from signtrain.config import DEFAULT_SEED, RECIPES  # noqa: E402

FOUR_SIGNS = ("hello", "no", "thanks", "yes")
THREE_SIGNS = ("hello", "iloveyou", "thanks")
FOUR_SIGNERS = ("ismokedata_6signs", "mokshavs03_5signs", "akadeepanshu_6signs")
SIX_SIGNERS = FOUR_SIGNERS + ("addyak_3signs", "achintyaxd_3signs", "akashsharma095_3signs")
CURVE_PEOPLE = (1, 2, 3, 5)
# Option sets, all with the spec's architecture: name -> TrainSettings fields (their epochs win over
# --epochs, --quick's 2 win over theirs). The front-end variants of run 4 are at commit 1177e61.
CONFIGURATIONS = {
    "spec defaults": {},
    "--normalize --augment": {"normalize": True, "augment": True},
    "--features relative": {"features": "relative"},
    "--features relative --augment": {"features": "relative", "augment": True},
    "--features relative --monitor val_loss": {"features": "relative", "monitor": "val_loss"},
    "--features relative --hand-dropout": {"features": "relative", "hand_dropout": True},
    "--features relative --keep last --epochs 60": {"features": "relative", "keep": "last", "epochs": 60},
    # --recipe people's settings, one model per seed: its ensemble row (the seeds' models as one) is
    # what --recipe people ships (--ensemble 3), measured without training the members twice.
    "--recipe people --ensemble 1": dict(RECIPES["people"], recipe="people", ensemble=1),
}
BEST = "--recipe people --ensemble 1"  # the recommended option's members; the verdicts are its (and its ensemble's)
ENSEMBLE = " + mean of the seeds' probabilities"  # a row per configuration: its seeds' models as one


def short(name):
    return name.split("_")[0]


def write_recording(realdata, name, signs, out_dir):
    """One signer's sequences of the given signs as an MP_Data tree, folders named by the sign."""
    recording = dict(np.load(os.path.join(realdata, f"{name}.npz")))
    keys = [names.name_key(action) for action in recording["actions_raw"]]
    rows = [row for row, label in enumerate(recording["y"]) if signs is None or keys[label] in signs]
    return data.write_tree(out_dir, recording["X"][rows], [keys[recording["y"][row]] for row in rows],
                           [str(index) for index in range(len(rows))])


def run_task(task):
    """One task in its own temporary folder: ("loo", signs, held-out, trained-on, ...) or ("kfold", ...)."""
    from signtrain.training.crossval import cross_validate
    from signtrain.training.train import TrainSettings, train

    kind, config, signs, held_out, trained_on, realdata, epochs, folds, seed = task
    # The configuration's own epochs (--recipe people: 60) capped by --epochs (--quick: 2).
    options = dict(CONFIGURATIONS[config], seed=seed, epochs=min(CONFIGURATIONS[config].get("epochs", epochs), epochs))
    with tempfile.TemporaryDirectory() as work:
        os.chdir(work)
        if kind == "loo":
            folders = [write_recording(realdata, name, signs, os.path.join(work, short(name))) for name in trained_on]
            test = write_recording(realdata, held_out, signs, os.path.join(work, "test", short(held_out)))
            settings = TrainSettings(data=folders if len(folders) > 1 else folders[0], test_data=test, **options)
            run_dir, metrics = quietly(train, settings)
            result = {"accuracy": metrics["external_test"]["accuracy"], "train_seconds": metrics["train_seconds"],
                      "seconds_per_epoch": metrics["train_seconds"] / max(metrics["epochs_run"], 1),
                      **held_out_probabilities(run_dir, metrics["actions"], test)}
            where = f"trained on {'+'.join(map(short, trained_on))}, tested on {short(held_out)}"
        else:
            tree = write_recording(realdata, held_out, signs, os.path.join(work, short(held_out)))
            _, summary = quietly(cross_validate, TrainSettings(data=tree, **options), folds=folds)
            result = {"accuracy": summary["mean_test_accuracy"], "seconds_per_epoch": None}
            where = f"{folds}-fold on {short(held_out)}"
    print(f"{config} (seed {seed}): {where}: {result['accuracy']:.1%}", flush=True)
    return result


def held_out_probabilities(run_dir, actions, test):
    """The shipped model's probabilities on the held-out recording and its labels in the model's
    order: the seeds' models of one configuration averaged make its ensemble row."""
    from signtrain.model import network as model_lib

    recording = recordings_lib.load_recording(actions, test)
    dataset, matched = recording.dataset, recording.matched
    y_true = np.array([actions.index(matched[dataset.actions[label]]) for label in dataset.y])
    shipped = model_lib.load_model(os.path.join(run_dir, "action_model.h5"))
    return {"probabilities": shipped.predict(dataset.X, verbose=0), "y_true": y_true}


def tasks_for(parts, configs, seeds, realdata, epochs, folds):
    tasks = []
    loo = {"a": (FOUR_SIGNS, FOUR_SIGNERS), "b": (THREE_SIGNS, SIX_SIGNERS)}
    for part in ("a", "b"):
        if part in parts:
            signs, signers = loo[part]
            tasks += [("loo", config, signs, held, tuple(sorted(s for s in signers if s != held)), realdata, epochs, folds, seed)
                      for seed in seeds for config in configs for held in signers]
    if "curve" in parts:
        for held in SIX_SIGNERS:
            others = [s for s in SIX_SIGNERS if s != held]
            order = [others[i] for i in np.random.default_rng(SIX_SIGNERS.index(held)).permutation(len(others))]
            tasks += [("loo", config, THREE_SIGNS, held, tuple(sorted(order[:people])), realdata, epochs, folds, seed)
                      for people in CURVE_PEOPLE for seed in seeds for config in configs]
    if "c" in parts:
        recordings = [(FOUR_SIGNS, s) for s in FOUR_SIGNERS] + [(THREE_SIGNS, s) for s in SIX_SIGNERS[3:]]
        recordings.append((None, "lujamanandhar_10signs"))
        tasks += [("kfold", config, signs, name, (), realdata, epochs, folds, DEFAULT_SEED)
                  for config in configs for signs, name in recordings]
    return list(dict.fromkeys(tasks))  # the curve's 5 people are part (b)'s trainings: run once


def _cell(values):
    values = np.asarray(values, dtype=float)
    return f"{values.mean():.1%}" + (f" +- {values.std(ddof=1):.1%}" if len(values) > 1 else "")


def loo_table(results, tasks, configs, signs, signers):
    """Markdown rows: per held-out signer mean +- sd over seeds, the mean over signers, the worst
    signer, s/epoch and s/training; then each configuration's seeds as one model (the mean of their
    probabilities: what --ensemble would ship, no extra training)."""
    header = ["configuration"] + [f"test on {short(s)}" for s in signers] + ["mean", "worst", "s/epoch", "s/training"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    means = {}
    for config in configs:
        mine = [t for t in tasks if t[0] == "loo" and t[1] == config and t[2] == signs and len(t[4]) == len(signers) - 1]
        per = {held: [results[t]["accuracy"] for t in mine if t[3] == held] for held in signers}
        per_seed = np.mean([per[held] for held in signers], axis=0)  # the mean over signers, per seed
        means[config] = per_seed
        worst = min(signers, key=lambda held: np.mean(per[held]))
        timing = [f"{np.mean([results[t][key] for t in mine]):.{digits}f}"
                  for key, digits in (("seconds_per_epoch", 2), ("train_seconds", 0))]
        lines.append("| " + " | ".join([config] + [_cell(per[h]) for h in signers] + [
            _cell(per_seed), f"{short(worst)} {np.mean(per[worst]):.1%}", *timing]) + " |")
        ensemble = {}
        for held in signers:
            runs = [results[t] for t in mine if t[3] == held]
            if len(runs) > 1:
                mean_probabilities = np.mean([run["probabilities"] for run in runs], axis=0)
                ensemble[held] = float(np.mean(mean_probabilities.argmax(1) == runs[0]["y_true"]))
        if len(ensemble) == len(signers):
            means[config + ENSEMBLE] = np.array([np.mean(list(ensemble.values()))])
            worst = min(ensemble, key=ensemble.get)
            lines.append("| " + " | ".join([config + ENSEMBLE] + [f"{ensemble[h]:.1%}" for h in signers] + [
                f"{np.mean(list(ensemble.values())):.1%}", f"{short(worst)} {ensemble[worst]:.1%}",
                "x seeds", "x seeds"]) + " |")
    return "\n".join(lines), means


def curve_table(results, tasks, configs):
    header = ["configuration"] + [f"{people} {'person' if people == 1 else 'people'}" for people in CURVE_PEOPLE]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for config in configs:
        cells = [_cell([results[t]["accuracy"] for t in tasks if t[0] == "loo" and t[1] == config
                        and t[2] == THREE_SIGNS and len(t[4]) == people]) for people in CURVE_PEOPLE]
        lines.append("| " + " | ".join([config] + cells) + " |")
    return "\n".join(lines)


def kfold_table(results, tasks, configs):
    names = list(dict.fromkeys(t[3] for t in tasks if t[0] == "kfold"))
    header = ["configuration"] + [f"5-fold {short(n)}" for n in names]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    table = {config: {n: results[t]["accuracy"] for t in tasks if t[0] == "kfold" and t[1] == config
                      for n in [t[3]]} for config in configs}
    for config in configs:
        lines.append("| " + " | ".join([config] + [f"{table[config][n]:.1%}" for n in names]) + " |")
    return "\n".join(lines), table


def verdicts(means, kfold):
    """The issue's targets, for the recommended option (BEST) and its seeds as one model."""
    lines = []
    for part, target in (("a", 0.80), ("b", 0.92)):
        for name in (BEST, BEST + ENSEMBLE):
            if part in means and name in means[part]:
                value, spread = means[part][name].mean(), means[part][name].std(ddof=1) if len(means[part][name]) > 1 else 0
                base = means[part].get("spec defaults", means[part].get("--features relative", np.array([np.nan])))
                met = round(value, 6) >= target and round(spread, 6) <= 0.03
                sd = "one ensemble of the seeds" if name.endswith(ENSEMBLE) else f"sd over seeds {spread * 100:.1f} points"
                lines.append(f"- ({part}) {name}: {value:.1%} leave-one-out mean, {sd} (targets >= {target:.0%}, sd <= 3; "
                             f"spec defaults or --features relative {base.mean():.1%}): {'MET' if met else 'not met'}")
    if kfold and BEST in kfold and "spec defaults" in kfold:
        losses = {n: kfold[BEST][n] - kfold["spec defaults"][n] for n in kfold[BEST]}
        worst = min(losses, key=losses.get)
        met = round(losses[worst], 6) >= -0.02
        lines.append(f"- (c) {BEST}: 5-fold change per recording "
                     f"{' / '.join(f'{short(n)} {d * 100:+.1f}' for n, d in losses.items())} points (target: none "
                     f"below -2.0): {'MET' if met else 'not met'}")
    return "\n".join(lines)


def report(results, tasks, parts, configs, curve_configs, seeds, args, seconds):
    from signtrain.training.train import versions

    print(f"\n# People the model never saw ({datetime.date.today()})\n")
    print(f"versions: {json.dumps({k: v for k, v in versions().items() if k != 'platform'})}; epochs {args.epochs}, "
          f"folds {args.folds}, seeds {seeds}{' (QUICK: numbers mean nothing)' if args.quick else ''}; "
          f"{len(tasks)} tasks, {seconds:.0f} s with --jobs {args.jobs}\n")
    means, kfold = {}, None
    titles = {"a": ("(a) hello/no/thanks/yes, leave one signer out of three (chance 25%)", FOUR_SIGNS, FOUR_SIGNERS),
              "b": ("(b) hello/iloveyou/thanks, leave one signer out of six (chance 33%)", THREE_SIGNS, SIX_SIGNERS)}
    for part in ("a", "b"):
        if part in parts:
            table, means[part] = loo_table(results, tasks, configs, *titles[part][1:])
            print(f"## {titles[part][0]}\n\n{table}\n")
    if "curve" in parts:
        print("## (b) accuracy on a held-out person against the number of people trained on\n\n"
              f"{curve_table(results, tasks, curve_configs)}\n")
    if "c" in parts:
        table, kfold = kfold_table(results, tasks, configs)
        print(f"## (c) {args.folds}-fold within one recording (seed {DEFAULT_SEED})\n\n{table}\n")
    print("Cells: mean +- sd over the seeds (per held-out signer), and of the per-seed mean over signers.\n")
    verdict = verdicts(means, kfold)
    if verdict:
        print("## Verdicts\n\n" + verdict)


def main():
    parser = realdata_parser(__doc__)
    parser.add_argument("--parts", default="a,b,curve,c", help="comma-separated subset of a, b, curve, c")
    parser.add_argument("--configs", default=";".join(CONFIGURATIONS),
                        help=f"semicolon-separated subset of: {'; '.join(CONFIGURATIONS)}")
    parser.add_argument("--curve-configs", default=f"spec defaults;{BEST}", help="the configurations of the curve")
    parser.add_argument("--seeds", type=int, default=3, help="trainings per cell (seeds 42, 43, ...)")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=1, help="trainings at a time, each in its own process")
    parser.add_argument("--quick", action="store_true", help="2 epochs, 1 seed, 2 folds: proves the script runs")
    args = parser.parse_args()
    parts = [p.strip() for p in args.parts.split(",")]
    configs = [c.strip() for c in args.configs.split(";")]
    curve_configs = [c.strip() for c in args.curve_configs.split(";")]
    unknown = [c for c in configs + curve_configs if c not in CONFIGURATIONS] + [
        p for p in parts if p not in ("a", "b", "curve", "c")]
    if unknown or args.seeds < 1:
        parser.error(f"unknown {unknown} (configurations: {list(CONFIGURATIONS)}; parts: a, b, curve, c), "
                     f"or --seeds below 1")
    if args.quick:
        args.epochs, args.seeds, args.folds = 2, 1, 2
    realdata = os.path.abspath(args.realdata)
    seeds = [DEFAULT_SEED + index for index in range(args.seeds)]
    tasks = tasks_for([p for p in parts if p != "curve"], configs, seeds, realdata, args.epochs, args.folds)
    if "curve" in parts:
        tasks += [t for t in tasks_for(["curve"], curve_configs, seeds, realdata, args.epochs, args.folds)
                  if t not in tasks]
    started = time.perf_counter()
    results = run_all(run_task, tasks, args.jobs)
    report(results, tasks, parts, configs, curve_configs, seeds, args, time.perf_counter() - started)


if __name__ == "__main__":
    main()
