"""After the fit: the best epoch reloaded and judged on the test split only, every file of the run
folder written (metrics.json last: a run without it is resumable), the exports checked, and the
summary the user reads."""

import dataclasses

import numpy as np

from signtrain import config, files
from signtrain.data import dataset as data, person, recordings
from signtrain.model import network as model_lib
from signtrain.report import diagnose, evaluate, metrics as metrics_record
from signtrain.export import convert as export
from signtrain.training import fitting, stream


@dataclasses.dataclass
class Judged:
    """The reloaded best model on the test rows, as the live app will run it."""
    best: object  # best_model.h5 reloaded (inference mode: moving averages, no dropout)
    probabilities: np.ndarray  # of action_model.h5 reloaded from disk, one row per test sequence
    in_memory: np.ndarray  # of the model still in memory: must equal the file's
    X_check: np.ndarray  # the test sequences the exports are checked on
    h5_keras3_only: str  # why action_model.h5 loads in Keras 3 only, or "" / None


@dataclasses.dataclass
class Scores:
    """The shipped model's predictions on the test rows against their labels."""
    correct: int
    accuracy: float
    loss: float  # the mean categorical cross-entropy
    interval: tuple  # the 95% Wilson interval of the test accuracy
    per_class: dict
    matrix: np.ndarray  # the confusion matrix, rows the true sign
    report: str  # the classification report (report.txt)


def score(dataset, test_idx, probabilities):
    """Accuracy, loss and the confusion matrix, all from the one prediction of the test rows."""
    y_true, y_pred = dataset.y[test_idx], probabilities.argmax(axis=1)
    per_class, matrix, report = evaluate.classification_metrics(y_true, y_pred, dataset.actions)
    correct = int(np.sum(y_pred == y_true))
    return Scores(correct, correct / len(y_true), categorical_crossentropy(y_true, probabilities),
                  evaluate.wilson_interval(correct, len(y_true)), per_class, matrix, report)


@dataclasses.dataclass
class RunReport:
    """What a finished run returns: its folder, metrics.json's content and what to tell the user."""
    run_dir: str
    metrics: metrics_record.Metrics  # metrics.json (its keys are a contract: README, diagnose, export)
    report: str  # the classification report (report.txt)
    failed_exports: list  # [(format, error)]: the run is complete, these formats can be retried


def judge(prepared, net):
    """Reload the best epoch, write action_model.h5, actions.npy and the SavedModel, and predict the
    test rows once with the shipped file (score() derives accuracy, loss and the confusion matrix)."""
    dataset, test_idx, path = prepared.dataset, prepared.split.test, prepared.path
    best = model_lib.compile_model(model_lib.load_model(path(config.BEST_MODEL_FILE)))
    build = fitting.builder(prepared.settings, len(dataset.actions), dataset)
    # Both Keras must predict alike on two test sequences before the Keras 2 file is kept.
    h5_keras3_only = export.save_h5(best, path(config.MODEL_FILE), build, stream.sample(dataset.X, test_idx, 2))
    files.save_actions(dataset.actions, path(config.ACTIONS_FILE))
    if prepared.resume_dir:  # a run stopped while writing its files: what it wrote is its own, made again
        files.remove_path(path(config.SAVEDMODEL_DIR))
    export.export_savedmodel(best, path(config.SAVEDMODEL_DIR))
    shipped = model_lib.load_model(path(config.MODEL_FILE))
    # With --stream dataset.X is a memory map: stream.predict reads READ_ROWS rows at a time.
    probabilities = stream.predict(shipped, dataset.X, test_idx)
    # The exports are checked on the test rows (with --stream the first READ_ROWS: arrays in memory).
    X_check = stream.sample(dataset.X, test_idx, stream.READ_ROWS if prepared.settings.stream else None)
    in_memory = net.predict(X_check, verbose=0)
    judged = Judged(best, probabilities, in_memory, X_check, h5_keras3_only)
    return judged, shipped


def categorical_crossentropy(labels, probabilities):
    """The mean categorical cross-entropy of softmax outputs, as Keras' evaluate computes it (from the
    softmax's logits: no clipping) to float32 rounding. A probability that underflowed float32 counts as
    float32's smallest normal number (a loss of 87.3 for that row, where Keras' logits give more)."""
    picked = probabilities[np.arange(len(labels)), labels].astype(np.float64)
    return float(np.mean(-np.log(np.maximum(picked, np.finfo(np.float32).tiny))))


def _metrics(prepared, judged, scores, history, train_seconds, resumed):
    """metrics.json's content (before exports, diagnostics and the external test)."""
    dataset, settings, split = prepared.dataset, prepared.settings, prepared.split
    val_accuracy = history.get("val_categorical_accuracy", [])
    best_index = fitting.best_epoch_index(history, settings.monitor, settings.keep)  # the epoch kept
    return metrics_record.Metrics(
        test_accuracy=scores.accuracy, test_accuracy_ci95=list(scores.interval), test_correct=scores.correct,
        test_loss=scores.loss,
        best_val_accuracy=float(val_accuracy[best_index]) if best_index is not None and val_accuracy else None,
        best_epoch=best_index + 1 if best_index is not None else None,
        monitor=settings.monitor, epochs_run=len(history.get("loss", [])),
        n_train=len(split.train), n_val=len(split.validation), n_test=len(split.test),
        actions=dataset.actions, num_features=dataset.num_features,
        per_class=scores.per_class, confusion_matrix=scores.matrix.tolist(),
        skipped_sequences=dataset.skipped, ignored=dataset.notes,
        data_check={key: value for key, value in prepared.data_check.items()
                    if key not in ("skipped_sequences", "ignored")},
        test_sequences=[list(dataset.sequences[i]) for i in split.test],
        # On a resume the in-memory model holds the weights EarlyStopping restored; they must match the file.
        reload_max_abs_diff=float(np.max(np.abs(judged.probabilities[:len(judged.in_memory)] - judged.in_memory))),
        train_seconds=train_seconds, resumed=bool(resumed), seed=settings.seed,
        # Exact BatchNorm statistics before every validation (signtrain.training.precise_bn), over the training
        # rows (a seeded sample of precise_bn.STATISTICS_ROWS of them when there are more).
        precise_bn=settings.precise_bn, reshuffle=settings.reshuffle, features=settings.features,
        hand_dropout=settings.hand_dropout, keep=settings.keep, recipe=settings.recipe,
        ensemble_size=settings.ensemble,
        # Where the sequences came from: one entry per --data recording (signtrain.data.recordings).
        recordings=recordings.summary(dataset),
        # What the training rows look like (hands missing, size, place, pace): evaluate compares a
        # person the model fails on with it (signtrain.data.person).
        data_profile=_profile_json(dataset.X, split.training),
        versions=prepared.versions,
        # Keras 2 (tf_keras, TF <= 2.15 apps) loads action_model.h5 too, unless it could not write or read
        # it (h5compat).
        h5_loads_in=["keras3"] + ([] if judged.h5_keras3_only else ["keras2"]),
        h5_keras3_only_because=judged.h5_keras3_only or None,
    )


def _profile_json(X, rows):
    found = person.profile(X, rows)
    return found.to_json() if found else None


def _exports(settings, judged, run_dir):
    """({format: record}, failures): one format failing keeps the run and the other formats."""
    records, failed = {}, []
    for name in settings.export:
        try:
            records.update(export.export_and_check(judged.best, run_dir, [name], judged.X_check,
                                                   judged.probabilities[:len(judged.X_check)],
                                                   written=("savedmodel",)))
        except (ValueError, ImportError, OSError) as error:
            records[name] = {"error": str(error)}
            failed.append((name, error))
    return records, failed


def finish(prepared, net, history, train_seconds, resumed, members=None):
    """Every file of the run folder after the fit; returns the RunReport. members: an --ensemble's
    trained members (net is them as one model; history is the first member's)."""
    judged, shipped = judge(prepared, net)
    dataset, path = prepared.dataset, prepared.path
    scores = score(dataset, prepared.split.test, judged.probabilities)
    evaluate.plot_confusion_matrix(scores.matrix, dataset.actions, path(config.CONFUSION_MATRIX_FILE))
    evaluate.plot_history(history, path(config.HISTORY_PLOT_FILE))
    files.write_text(path(config.REPORT_FILE), scores.report)
    metrics = _metrics(prepared, judged, scores, history, train_seconds, resumed)
    if members:
        from signtrain.model import ensemble

        metrics.ensemble = {"members": len(members), "seeds": [prepared.settings.seed + k for k in range(len(members))],
                               "member_test_accuracy": ensemble.member_accuracies(members, judged.X_check,
                                                                                  dataset.y[prepared.split.test][:len(judged.X_check)]),
                               "member_test_rows": len(judged.X_check),  # with --stream the first READ_ROWS
                               "test_accuracy": scores.accuracy}
    failed = []
    if prepared.settings.export:
        metrics.exports, failed = _exports(prepared.settings, judged, prepared.run_dir)
    metrics.diagnostics = diagnose.diagnose(metrics, history)
    if prepared.recording:
        metrics.external_test = evaluate.evaluate_recording(shipped, dataset.actions, prepared.recording,
                                                            person.Profile.from_json(metrics.data_profile))
    files.write_json(path(config.METRICS_FILE), metrics.to_json())  # last: a run without it is resumable
    return RunReport(prepared.run_dir, metrics, scores.report, failed)


def print_summary(run):
    """What the user reads at the end of a run; raises when an export failed (the run is complete)."""
    metrics, run_dir = run.metrics, run.run_dir
    low, high = metrics.test_accuracy_ci95
    print(run.report)
    print(diagnose.format_diagnostics(metrics.diagnostics))
    if metrics.external_test:
        print(evaluate.format_recording_result(metrics.external_test))
    kept = "the last epoch's validation accuracy" if metrics.keep == "last" else "best validation accuracy"
    print(f"test accuracy {metrics.test_accuracy:.1%} ({metrics.test_correct}/{metrics.n_test}; 95% interval "
          f"{low:.0%}-{high:.0%}), {kept} {metrics.best_val_accuracy:.1%} at epoch "
          f"{metrics.best_epoch} of {metrics.epochs_run}, {metrics.train_seconds:.0f} s")
    print(f"run saved to {run_dir}: {config.MODEL_FILE} and {config.ACTIONS_FILE} go to the live app")
    because = metrics.h5_keras3_only_because
    if because:
        print(f"{config.MODEL_FILE} loads in Keras 3 (TensorFlow 2.16+) only ({because}); for a TF <= 2.15 "
              f"app use signtrain export {run_dir} --format onnx (ONNX Runtime) or tflite")
    else:
        print(f"{config.MODEL_FILE} loads with load_model in Keras 3 (TF 2.16+) and Keras 2 (tf_keras; TF 2.15)")
    if run.failed_exports:
        names = ",".join(name for name, _ in run.failed_exports)
        raise ValueError(f"{'; '.join(str(error) for _, error in run.failed_exports)}. The run itself is complete in "
                         f"{run_dir}; retry with: signtrain export {run_dir} --format {names}")
