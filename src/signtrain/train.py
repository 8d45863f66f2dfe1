"""One training run, start to finish: load, split, fit, reload the best model, evaluate on the
test split only, write every file of the run folder.

The loop is the spec's: model.fit with validation_split=0.15, EarlyStopping on
val_categorical_accuracy with restore_best_weights, ModelCheckpoint(best_model.h5), TensorBoard.
"""

import dataclasses
import logging
import os
import platform
import sys
import time

import numpy as np

from signtrain import __version__, config, data, evaluate, export
from signtrain import model as model_lib


@dataclasses.dataclass
class TrainSettings:
    data: str
    out: str = None  # None: a new runs/train/exp, exp2, ...
    epochs: int = config.DEFAULT_EPOCHS
    patience: int = config.DEFAULT_PATIENCE
    batch_size: int = config.DEFAULT_BATCH_SIZE
    seed: int = config.DEFAULT_SEED
    actions: list = None  # None: the spec's 10 when the data has exactly them, else sorted folders
    verbose: int = None  # None: a progress bar on a terminal, one line per epoch otherwise

    def validate(self):
        for name in ("epochs", "patience", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < (0 if name == "patience" else 1):
                raise ValueError(f"--{name.replace('_', '-')} must be a positive whole number, got {value!r}")


def new_run_dir(base=config.DEFAULT_RUNS_DIR, name="exp"):
    """Create and return base/exp, base/exp2, ...: the first that does not exist yet."""
    os.makedirs(base, exist_ok=True)
    index = 1
    while True:
        path = os.path.join(base, name if index == 1 else f"{name}{index}")
        try:
            os.mkdir(path)  # atomic: two runs started together never share a folder
            return path
        except FileExistsError:
            index += 1


def prepare_run_dir(out):
    if out is None:
        return new_run_dir()
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        raise FileExistsError(
            f"--out {out!r} already exists and is not empty; signtrain never overwrites a run. "
            f"Pick a new folder, or leave --out out to get the next {config.DEFAULT_RUNS_DIR}/expN."
        )
    os.makedirs(out, exist_ok=True)
    return out


def versions():
    import keras
    import sklearn
    import tensorflow as tf

    return {
        "signtrain": __version__,
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "platform": platform.platform(),
    }


class _HideHdf5LegacyNotice(logging.Filter):
    """Keras 3 logs "HDF5 is legacy" at every checkpoint; .h5 is what the live app loads, on purpose."""

    def filter(self, record):
        return "saving your model as an HDF5 file" not in record.getMessage()


logging.getLogger("absl").addFilter(_HideHdf5LegacyNotice())


def default_verbose():
    # Keras' bar redraws one line; piped into a file or CI log that is noise, so one line per epoch.
    return 1 if sys.stdout.isatty() else 2


def train(settings):
    """Run the whole pipeline; returns (run_dir, metrics dict)."""
    settings.validate()
    dataset = data.load_dataset(settings.data, settings.actions)
    for skip in dataset.skipped:
        print(f"skipped {skip['action']}/{skip['sequence']}: {skip['reason']}")
    train_idx, test_idx = data.split_indices(dataset.y, seed=settings.seed)
    run_dir = prepare_run_dir(settings.out)
    path = lambda name: os.path.join(run_dir, name)  # noqa: E731

    import tensorflow as tf
    from tensorflow import keras

    keras.utils.set_random_seed(settings.seed)
    num_actions = len(dataset.actions)
    X_train, X_test = dataset.X[train_idx], dataset.X[test_idx]
    y_train = data.one_hot(dataset.y[train_idx], num_actions)
    y_test = data.one_hot(dataset.y[test_idx], num_actions)
    print(
        f"{len(dataset.y)} sequences of {num_actions} actions, frames of {dataset.num_features} values; "
        f"train {len(train_idx)} (of which {config.VALIDATION_SPLIT:.0%} validation), test {len(test_idx)}"
    )

    net = model_lib.compile_model(
        model_lib.build_model(num_actions, dataset.X.shape[1], dataset.num_features)
    )
    callbacks = [
        keras.callbacks.EarlyStopping(
            monitor=config.MONITOR,
            patience=settings.patience,
            restore_best_weights=True,
            verbose=1,
        ),
        keras.callbacks.ModelCheckpoint(
            path(config.BEST_MODEL_FILE), monitor=config.MONITOR, save_best_only=True, verbose=0
        ),
        keras.callbacks.TensorBoard(log_dir=path(config.LOGS_DIR)),
        keras.callbacks.CSVLogger(path(config.RESULTS_FILE)),
    ]
    started = time.perf_counter()
    history = net.fit(
        X_train,
        y_train,
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        validation_split=config.VALIDATION_SPLIT,
        callbacks=callbacks,
        verbose=default_verbose() if settings.verbose is None else settings.verbose,
    ).history
    train_seconds = time.perf_counter() - started

    # Judge the model as the live app will run it: reloaded from disk, in inference mode
    # (BatchNorm on its moving averages, no dropout). Never trust training-mode accuracy.
    best = model_lib.compile_model(model_lib.load_model(path(config.BEST_MODEL_FILE)))
    export.save_h5(best, path(config.MODEL_FILE))
    export.save_actions(dataset.actions, path(config.ACTIONS_FILE))
    export.export_savedmodel(best, path(config.SAVEDMODEL_DIR))
    shipped = model_lib.load_model(path(config.MODEL_FILE))
    test_loss, test_accuracy = (float(v) for v in best.evaluate(X_test, y_test, verbose=0))
    probabilities = shipped.predict(X_test, verbose=0)
    in_memory = net.predict(X_test, verbose=0)
    y_pred = probabilities.argmax(axis=1)
    y_true = dataset.y[test_idx]

    per_class, matrix, report = evaluate.classification_metrics(y_true, y_pred, dataset.actions)
    correct = int(np.sum(y_pred == y_true))
    interval = evaluate.wilson_interval(correct, len(y_true))
    evaluate.plot_confusion_matrix(matrix, dataset.actions, path(config.CONFUSION_MATRIX_FILE))
    evaluate.plot_history(history, path(config.HISTORY_PLOT_FILE))
    export.write_text(path(config.REPORT_FILE), report)

    n_val = int(len(train_idx) * config.VALIDATION_SPLIT)
    val_accuracy = history.get(config.MONITOR, [])
    run_versions = versions()
    metrics = {
        "test_accuracy": test_accuracy,
        "test_accuracy_ci95": list(interval),
        "test_correct": correct,
        "test_loss": test_loss,
        "best_val_accuracy": float(max(val_accuracy)) if val_accuracy else None,
        "best_epoch": int(np.argmax(val_accuracy)) + 1 if val_accuracy else None,
        "epochs_run": len(history.get("loss", [])),
        "n_train": len(train_idx) - n_val,
        "n_val": n_val,
        "n_test": len(test_idx),
        "actions": dataset.actions,
        "num_features": dataset.num_features,
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
        "skipped_sequences": dataset.skipped,
        "ignored": dataset.notes,
        "test_sequences": [list(dataset.sequences[i]) for i in test_idx],
        "reload_max_abs_diff": float(np.max(np.abs(probabilities - in_memory))),
        "train_seconds": train_seconds,
        "seed": settings.seed,
        "versions": run_versions,
    }
    export.write_json(path(config.METRICS_FILE), metrics)
    args = dataclasses.asdict(settings)
    args.update(
        out=run_dir,
        actions=dataset.actions,
        test_size=config.TEST_SIZE,
        validation_split=config.VALIDATION_SPLIT,
        monitor=config.MONITOR,
        sequence_length=int(dataset.X.shape[1]),
        num_features=dataset.num_features,
        versions=run_versions,
    )
    args.pop("verbose")
    export.write_yaml(path(config.ARGS_FILE), args)
    tf.keras.backend.clear_session()

    print(report)
    print(
        f"test accuracy {test_accuracy:.1%} ({correct}/{len(y_true)}; 95% interval "
        f"{interval[0]:.0%}-{interval[1]:.0%}), best validation accuracy "
        f"{metrics['best_val_accuracy']:.1%} at epoch {metrics['best_epoch']} of "
        f"{metrics['epochs_run']}, {train_seconds:.0f} s"
    )
    print(f"run saved to {run_dir}: {config.MODEL_FILE} and {config.ACTIONS_FILE} go to the live app")
    return run_dir, metrics
