"""`signtrain cv`: the spec's model trained K times, each time scored on rows it never saw.

--by fold (default): repeated stratified K-fold over all sequences (the number one recording gives).
--by recording: leave-one-recording-out. Every --data recording is the test set once, trained on
all the others: the accuracy on a person the model never saw, which is what a live demo meets.
Each training is the spec's (validation_split, early stopping with restored best weights), scored
in inference mode; cv.json keeps every number printed.
"""

import os
import shutil

import numpy as np

from signtrain import config, files
from signtrain.data import dataset as data, person, twins
from signtrain.report import evaluate
from signtrain.training import distribute, finish, fitting, runfolder, settings as settings_lib, train as train_lib


def _splits(dataset, settings, folds, repeats, by):
    """[(name, Split)]. Training rows are shuffled: KFold hands them out in file order
    (sign by sign) and validation_split takes the last 15%, which would be the last signs only."""
    if by == "recording":
        if not dataset.recordings or len(dataset.recordings) < 2:
            raise ValueError("cv --by recording needs at least two recordings: give --data once per person (or "
                             "sitting), e.g. --data alice/MP_Data --data bob/MP_Data")
        pairs = [(name, np.flatnonzero(dataset.recording != index), np.flatnonzero(dataset.recording == index))
                 for index, name in enumerate(dataset.recordings)]
    else:
        from sklearn.model_selection import RepeatedStratifiedKFold

        if folds < 2 or repeats < 1:
            raise ValueError(f"--folds must be at least 2 and --repeats at least 1, got {folds} and {repeats}")
        smallest = int(np.bincount(dataset.y).min())
        if smallest < folds:
            raise ValueError(f"--folds {folds} needs at least {folds} sequences of every sign; the smallest has "
                             f"{smallest}. Use fewer folds.")
        splitter = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=settings.seed)
        pairs = [(f"fold {index + 1}", train_idx, test_idx)
                 for index, (train_idx, test_idx) in enumerate(splitter.split(dataset.X, dataset.y))]
    # A take copied into another fold or recording is never trained on when its twin is tested.
    group = dataset.twin_group
    kept = [(name, *twins.keep_apart(train_idx, test_idx, group), test_idx) for name, train_idx, test_idx in pairs]
    left_out = sum(len(out) for _, _, out, _ in kept)
    if left_out:
        print(f"left out of training: {left_out} sequences (over {len(kept)} splits) identical to a sequence their "
              f"split tests on (signtrain check lists the identical takes)")
    pairs = [(name, train_idx, test_idx) for name, train_idx, _, test_idx in kept]
    return [(name, data.Split.of(np.random.default_rng(settings.seed + index).permutation(train_idx), test_idx))
            for index, (name, train_idx, test_idx) in enumerate(pairs)]


def _train_and_score(dataset, settings, strategy, index, split):
    """(result, confusion matrix, recall per sign present) of one training on the split's rows."""
    from tensorflow import keras

    num_actions, seed = len(dataset.actions), settings.seed + index
    keras.utils.set_random_seed(seed)
    net = fitting.new_model(settings, num_actions, dataset, strategy)
    test_idx = split.test
    fit_plan = fitting.plan_fit(settings, dataset.X, data.one_hot(dataset.y, num_actions), split, seed,
                                net.distribute_strategy.num_replicas_in_sync)
    stopping = [] if settings.keep == "last" else [keras.callbacks.EarlyStopping(
        monitor=settings.monitor, mode=config.MONITOR_MODES[settings.monitor], patience=settings.patience,
        restore_best_weights=True)]
    history = fitting.fit(net, fit_plan, epochs=settings.epochs, verbose=0, callbacks=stopping).history
    scores = finish.score(dataset, test_idx, net.predict(dataset.X[test_idx], verbose=0))  # as a run scores
    result = {"test_accuracy": scores.accuracy, "test_correct": scores.correct, "n_test": len(test_idx),
              "test_accuracy_ci95": list(scores.interval), "epochs_run": len(history["loss"])}
    trained = set(dataset.y[split.train].tolist())  # a sign never trained on has no recall to report
    recall = [scores.per_class[action]["recall"] if scores.per_class[action]["support"] and label in trained else np.nan
              for label, action in enumerate(dataset.actions)]
    keras.backend.clear_session()
    return result, scores.matrix, recall


def _summary(dataset, settings, results, recalls, pooled, folds, repeats, by):
    from scipy import stats

    accuracies = np.array([r["test_accuracy"] for r in results])
    # Spread across folds (t interval of the mean) and, beside it, the interval of all pooled predictions.
    half = float(stats.t.ppf(0.975, len(accuracies) - 1) * accuracies.std(ddof=1) / np.sqrt(len(accuracies)))
    recalls = np.array(recalls, dtype=float)
    return {
        "by": by,
        "folds": folds if by == "fold" else len(results),
        "repeats": repeats if by == "fold" else 1,
        "actions": dataset.actions,
        "mean_test_accuracy": float(accuracies.mean()),
        # An accuracy lies in [0, 1]; with few folds the t interval reaches beyond, so it is clipped there.
        "mean_test_accuracy_ci95": [float(max(0.0, accuracies.mean() - half)), float(min(1.0, accuracies.mean() + half))],
        "pooled_accuracy_ci95": list(evaluate.wilson_interval(int(np.trace(pooled)), int(pooled.sum()))),
        # A sign counts in a fold only where it was trained on and tested (a held-out recording may lack it).
        "recall_per_class": {action: {"mean": float(np.nanmean(recalls[:, i])), "min": float(np.nanmin(recalls[:, i]))}
                             for i, action in enumerate(dataset.actions) if not np.all(np.isnan(recalls[:, i]))},
        "confusion_matrix": pooled.tolist(),
        ("recording_results" if by == "recording" else "fold_results"): results,
        "skipped_sequences": dataset.skipped,
        "seed": settings.seed,
        "features": settings.features,
        "versions": train_lib.versions(),
    }


def _print_summary(summary, path):
    low, high = summary["mean_test_accuracy_ci95"]
    print("recall per sign (mean, worst): " + ", ".join(
        f"{action} {entry['mean']:.0%} ({entry['min']:.0%})" for action, entry in summary["recall_per_class"].items()))
    count = len(summary.get("recording_results") or summary["fold_results"])
    what = ("leave-one-recording-out: mean accuracy on a recording the model never saw" if summary["by"] == "recording"
            else f"{summary['folds']}-fold x {summary['repeats']}: mean test accuracy")
    print(f"{what} {summary['mean_test_accuracy']:.1%} (95% interval {max(0, low):.0%}-{min(1, high):.0%}) over "
          f"{count} {'recordings' if summary['by'] == 'recording' else 'folds'}; written to {path}")


def cross_validate(settings, folds=5, repeats=1, out=None, by="fold"):
    """Train once per split (see the module doc); returns (run folder, summary) and writes cv.json."""
    settings = settings_lib.resolved(settings)
    if by not in ("fold", "recording"):
        raise ValueError(f"--by {by!r} is not one of fold, recording")
    dataset, _ = train_lib.checked_data(settings)  # the data check `train` runs, refusing what it refuses
    settings_lib.check_options(settings, dataset)
    splits = _splits(dataset, settings, folds, repeats, by)
    run_dir = runfolder.open_run(out, base=os.path.join(os.path.dirname(config.DEFAULT_RUNS_DIR), "cv"))
    try:
        strategy = distribute.make_strategy(settings.strategy)
        results, recalls, pooled = [], [], np.zeros((len(dataset.actions),) * 2, int)
        for index, (name, split) in enumerate(splits):
            result, matrix, recall = _train_and_score(dataset, settings, strategy, index, split)
            low, high = result["test_accuracy_ci95"]
            if by == "recording":  # what differs in the held-out person (signtrain.data.person)
                result["differences"] = person.differences(person.profile(dataset.X, split.test),
                                                           person.profile(dataset.X, split.training))
            results.append(dict({"recording": name} if by == "recording" else {"fold": index}, **result))
            recalls.append(recall)
            pooled += matrix
            print(f"{'held out ' if by == 'recording' else ''}{name} ({index + 1}/{len(splits)}): test accuracy "
                  f"{result['test_accuracy']:.1%} of {len(split.test)} (95% interval {low:.0%}-{high:.0%}) after "
                  f"{result['epochs_run']} epochs", flush=True)
            for line in result.get("differences", []):
                print(f"  why it may fail: {line}")
        summary = _summary(dataset, settings, results, recalls, pooled, folds, repeats, by)
        path = os.path.join(run_dir, "cv.json")
        files.write_json(path, summary)
        if not distribute.is_chief():
            shutil.rmtree(run_dir, ignore_errors=True)
        _print_summary(summary, path)
        return run_dir, summary
    finally:
        runfolder.release(run_dir)
