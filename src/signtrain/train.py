"""One training run, start to finish: load, split, fit, reload the best model, evaluate on the
test split only, write every file of the run folder.

The loop is the spec's: model.fit with validation_split=0.15, EarlyStopping on
val_categorical_accuracy with restore_best_weights, ModelCheckpoint(best_model.h5), TensorBoard.
"""

import csv
import dataclasses
import errno
import logging
import os
import platform
import shutil
import sys
import tempfile
import time

import numpy as np

from signtrain import __version__, check, config, data, diagnose, distribute, evaluate, export, fast, precise_bn, recordings, stream
from signtrain import model as model_lib


@dataclasses.dataclass
class TrainSettings:
    data: str  # an MP_Data folder, or a list of them: one recording each (signtrain.recordings)
    out: str = None  # None: a new runs/train/exp, exp2, ...
    epochs: int = config.DEFAULT_EPOCHS
    patience: int = config.DEFAULT_PATIENCE
    batch_size: int = config.DEFAULT_BATCH_SIZE
    seed: int = config.DEFAULT_SEED
    actions: list = None  # None: the spec's 10 when the data has exactly them, else sorted folders
    any_layout: bool = False  # accept frames that are not the 1662-value contract
    normalize: bool = False  # shoulder-relative keypoints, as layers inside the saved model
    features: str = "raw"  # what the first LSTM sees (signtrain.features.FEATURE_SETS), computed inside the model
    augment: bool = False  # mirrored, moved and re-timed copies of the training sequences
    test_data: str = None  # another recording to evaluate the finished model on
    aliases: list = None  # [(name, name)] declared the same sign when matching test_data folders
    fast: bool = None  # the fast CPU training path (signtrain.fast); None: on without a GPU
    strategy: str = "none"  # tf.distribute: none, mirrored or multiworker (signtrain.distribute)
    export: list = None  # more formats to write and check: onnx, tflite, savedmodel (signtrain.export)
    stream: bool = False  # data bigger than memory: batches read from the packed cache (signtrain.stream)
    precise_bn: bool = True  # exact BatchNorm statistics before every validation (signtrain.precise_bn)
    reshuffle: bool = None  # a new seeded batch order every epoch (fast.epoch_batches); None: with precise_bn
    monitor: str = config.MONITOR  # what EarlyStopping and the checkpoint watch (config.MONITOR_MODES)
    verbose: int = None  # None: a progress bar on a terminal, one line per epoch otherwise

    def validate(self):
        for name in ("epochs", "patience", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < (0 if name == "patience" else 1):
                raise ValueError(f"--{name.replace('_', '-')} must be a positive whole number, got {value!r}")
        if self.export:
            self.export = export.parse_formats(self.export if isinstance(self.export, str) else ",".join(self.export))
            export.require_converters(self.export)
        if self.augment and self.stream:
            raise ValueError("--augment makes its copies in memory and cannot be combined with --stream; "
                             "drop one of them")
        if self.monitor not in config.MONITOR_MODES:
            raise ValueError(f"--monitor {self.monitor!r} is not one of {', '.join(config.MONITOR_MODES)}")
        if self.strategy not in distribute.STRATEGIES:
            raise ValueError(f"--strategy {self.strategy!r} is not one of {', '.join(distribute.STRATEGIES)}")


class TrainingInterrupted(Exception):
    """Ctrl-C during fit: what was learned is saved and the run can be resumed."""


# Saved on Ctrl-C: the weights and the optimizer state, so --resume continues where it stopped.
LAST_MODEL_FILE = "last_model.keras"
MIN_FREE_BYTES = 200 * 1024 * 1024  # models, SavedModel, logs and plots of one run, with room to spare
# Created exclusively in a new run folder while the run trains: two runs started together with the
# same --out cannot both write into it. Removed when the run ends (finished, interrupted or failed).
CLAIM_FILE = ".signtrain_training"


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


def prepare_run_dir(out, base=config.DEFAULT_RUNS_DIR):
    """A new, writable run folder with room for the outputs, checked before any training."""
    in_use = FileExistsError(f"--out {out!r} is being written by another signtrain run (started at the same time, or "
                             f"killed: if none is running, delete the folder); pick another folder")
    if out is not None and os.path.isdir(out) and os.listdir(out) == [CLAIM_FILE]:
        raise in_use
    if out is not None and os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        raise FileExistsError(
            f"--out {out!r} already exists and is not empty; signtrain never overwrites a run. "
            f"Pick a new folder, or leave --out out to get the next {config.DEFAULT_RUNS_DIR}/expN."
        )
    try:
        run_dir = new_run_dir(base) if out is None else out
        os.makedirs(run_dir, exist_ok=True)
        # The claim proves the folder writable, and only one run gets it (O_EXCL is atomic).
        claim = os.open(os.path.join(run_dir, CLAIM_FILE), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        os.write(claim, f"{os.getpid()}\n".encode())
        os.close(claim)
    except FileExistsError:  # the other run claimed it between the check above and now
        raise in_use from None
    except OSError as error:
        where = out or base
        raise PermissionError(
            f"cannot write the run folder {where!r}: {error.strerror or error}. Pass --out with a folder "
            f"on a disk you can write to."
        ) from None
    free = shutil.disk_usage(run_dir).free
    if free < MIN_FREE_BYTES:
        os.remove(os.path.join(run_dir, CLAIM_FILE))
        if not os.listdir(run_dir):
            os.rmdir(run_dir)  # leave no empty run folder behind
        raise OSError(
            f"only {free // 2**20} MB free on the disk of {run_dir!r}; a run needs about "
            f"{MIN_FREE_BYTES // 2**20} MB. Free some space or pass --out on another disk."
        )
    return run_dir


def _check_outside_data(out, data_dir, base=config.DEFAULT_RUNS_DIR):
    """A run folder inside the data folder would be read as a sign by the next run: refused."""
    where = os.path.realpath(out if out is not None else base)
    data_root = os.path.realpath(data_dir)
    if os.path.commonpath([where, data_root]) == data_root:
        flag = f"--out {out!r}" if out is not None else f"the default run folder {base!r} (from this working folder)"
        raise ValueError(f"{flag} is inside the data folder {data_dir!r}: the next run would take the run folder for "
                         f"a sign. Put runs outside it, e.g. --out {os.path.join(os.path.dirname(data_root), 'runs')}")


def _drop_partials(run_dir):
    """Remove the temp files of writes an interrupt or a full disk cut short (export.partial_name)."""
    for name in os.listdir(run_dir):
        if ".partial" in name:
            export.remove_path(os.path.join(run_dir, name))


DISK_FULL_BYTES = 16 * 1024 * 1024  # below this, a failed write is taken for a full disk


def _disk_full(error, run_dir):
    return (getattr(error, "errno", None) == errno.ENOSPC or "No space left on device" in str(error)
            or shutil.disk_usage(run_dir).free < DISK_FULL_BYTES)


def _disk_full_message(run_dir, best_path):
    free = shutil.disk_usage(run_dir).free // 2**20
    if os.path.exists(best_path):
        return (f"the disk of {run_dir} is full ({free} MB free): training stopped. {os.path.basename(best_path)} "
                f"keeps the best epoch so far; free some space, then continue with: signtrain train --resume {run_dir}")
    return (f"the disk of {run_dir} is full ({free} MB free) before the first epoch ended: nothing to keep, the run "
            f"folder was removed. Free some space (a run needs about {MIN_FREE_BYTES // 2**20} MB) and start again")


def _release(run_dir):
    """The run no longer writes run_dir: its claim goes (the folder itself stays, unless discarded)."""
    claim = os.path.join(run_dir, CLAIM_FILE)
    if os.path.exists(claim):
        os.remove(claim)


def _discard(run_dir, created):
    """Remove what a run that kept nothing wrote: the folder if the run made it, else its contents."""
    if created:
        shutil.rmtree(run_dir, ignore_errors=True)
        return
    for name in os.listdir(run_dir):
        export.remove_path(os.path.join(run_dir, name))


def _run_folder(out, base=config.DEFAULT_RUNS_DIR, resume_dir=None):
    """The folder a run writes to. Only the chief of a multi-worker run writes the real one; the
    other workers write to a temp folder, removed when they finish."""
    if not distribute.is_chief():
        return tempfile.mkdtemp(prefix="signtrain_worker_")
    return resume_dir or prepare_run_dir(out, base)


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


def load_data(settings):
    """The dataset of --data: one MP_Data folder (in memory or --stream), or several recordings."""
    folders = recordings.expand(settings.data)
    if not settings.stream:
        return recordings.load(folders, settings.actions, settings.aliases or (), settings.any_layout)
    if len(folders) > 1:
        raise ValueError(f"--stream reads one --data folder, {len(folders)} recordings were given; train them in "
                         f"memory (drop --stream) or put them in one MP_Data folder")
    return data.load_dataset(folders[0], settings.actions, any_layout=settings.any_layout, stream=True)


def _check_options(settings, dataset):
    if settings.augment and dataset.num_features != config.NUM_FEATURES:
        raise ValueError(f"--augment needs the 1662-value layout, the data has {dataset.num_features} values per frame")


def fit_arguments(X_train, y_train, settings, seed):
    """x, y and validation for model.fit: the spec's validation_split, or with --augment the same
    validation rows held out explicitly and only the training rows augmented (a copy of a
    validation sequence in the training data would inflate the validation accuracy)."""
    if not settings.augment:
        return {"x": X_train, "y": y_train, "validation_split": config.VALIDATION_SPLIT}
    from signtrain import preprocess

    # Keras' validation_split takes the last 15% of the rows: the same ones here.
    split = data.fit_rows(len(X_train))
    x, y = preprocess.augment(X_train[:split], y_train[:split], np.random.default_rng(seed))
    return {"x": x, "y": y, "validation_data": (X_train[split:], y_train[split:])}


def _resolved(settings):
    """The settings with the automatic choices made (recorded as such in args.yaml)."""
    settings.validate()
    # Under a tf.distribute strategy Keras' own loop runs (on GPUs it is the cuDNN kernel anyway).
    use_fast = settings.strategy == "none" and (fast.available() if settings.fast is None else settings.fast)
    # The stable recipe is both halves: exact statistics and a new batch order every epoch.
    reshuffle = settings.precise_bn if settings.reshuffle is None else settings.reshuffle
    return dataclasses.replace(settings, fast=use_fast, reshuffle=reshuffle)


def _new_model(settings, num_actions, dataset, strategy):
    """The compiled spec model, its variables made under the strategy's scope when there is one."""
    with distribute.scope(strategy):
        return model_lib.compile_model(
            model_lib.build_model(num_actions, dataset.X.shape[1], dataset.num_features, settings.normalize,
                                  settings.features))


def _fit(net, arguments, settings, seed, statistics=None, callbacks=(), **kwargs):
    """net.fit on fit_arguments(): Keras' own loop, or the fast CPU path (signtrain.fast) on the same
    rows, the same validation rows and the same batch size. Unless --no-precise-bn, BatchNorm's
    statistics are recomputed over the training rows before every validation (signtrain.precise_bn):
    statistics=(X, rows) names them for streamed arguments; in memory they are the rows fit trains on."""
    replicas = net.distribute_strategy.num_replicas_in_sync
    if settings.precise_bn:
        if statistics is None:  # in memory: every row of x but the ones validation_split holds out
            x = arguments["x"]
            statistics = (x, np.arange(len(x) if "validation_data" in arguments else data.fit_rows(len(x))))
        X, rows = statistics
        rows = np.asarray(rows)[precise_bn.statistics_rows(len(rows), seed)]
        callbacks = [precise_bn.callback(X, rows), *callbacks]
    kwargs["callbacks"] = list(callbacks)
    if "y" not in arguments:  # streamed tf.data pipelines (signtrain.stream), batches already per step
        if settings.fast:
            fast.install(net)
        return net.fit(**arguments, shuffle=False, **kwargs)
    if not settings.fast and not settings.reshuffle and replicas == 1:  # the spec's own call
        return net.fit(**arguments, batch_size=settings.batch_size, **kwargs)
    x, y = arguments["x"], arguments["y"]
    validation = arguments.get("validation_data")
    if validation is None:  # the rows validation_split would take
        split = data.fit_rows(len(x))
        x, y, validation = x[:split], y[:split], (x[split:], y[split:])
    # --batch-size is per replica: with N devices each step takes N batches, gradients averaged.
    # Keras 3.15 builds the model under a strategy from the first validation batch split across the
    # replicas and fails when that split is uneven: that first batch is made a multiple of N.
    batch_size = settings.batch_size * replicas
    validation_batch = max(replicas, min(batch_size, len(validation[0])) // replicas * replicas)
    if settings.fast or settings.reshuffle:
        if settings.fast:
            fast.install(net)
        pipelines = fast.datasets(x, y, validation, batch_size, seed, reshuffle=settings.reshuffle,
                                  validation_batch_size=None if replicas == 1 else validation_batch)
        # shuffle=False: the pipeline shuffles itself (Keras would only warn that it ignores shuffle).
        return net.fit(**pipelines, shuffle=False, **kwargs)
    return net.fit(x=x, y=y, validation_data=validation, batch_size=batch_size,
                   validation_batch_size=validation_batch, **kwargs)


def _callbacks(keras, path, settings, resumed):
    """The spec's callbacks, made safe to interrupt and to resume."""

    class AtomicCheckpoint(keras.callbacks.ModelCheckpoint):
        # ModelCheckpoint writes in place; an interrupt mid-write would leave a broken best_model.h5.
        # It writes to a temp name here, renamed into place once complete.
        def __init__(self, final_path, **kwargs):
            super().__init__(export.partial_name(final_path), **kwargs)
            self.final_path = final_path

        def on_epoch_end(self, epoch, logs=None):
            super().on_epoch_end(epoch, logs)
            if os.path.exists(self.filepath):
                os.replace(self.filepath, self.final_path)

    class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
        # On --resume, carry on counting patience from the recorded epochs instead of from zero.
        def on_train_begin(self, logs=None):
            super().on_train_begin(logs)
            if resumed:
                self.best, self.wait = resumed["best"], resumed["wait"]
                self.best_epoch, self.best_weights = resumed["best_epoch"], resumed["best_weights"]

    return [
        ResumableEarlyStopping(
            monitor=settings.monitor, mode=config.MONITOR_MODES[settings.monitor], patience=settings.patience,
            restore_best_weights=True, verbose=1
        ),
        AtomicCheckpoint(
            path(config.BEST_MODEL_FILE), monitor=settings.monitor, mode=config.MONITOR_MODES[settings.monitor],
            save_best_only=True, verbose=0,
            initial_value_threshold=resumed["best"] if resumed else None,
        ),
        keras.callbacks.TensorBoard(log_dir=path(config.LOGS_DIR)),
        keras.callbacks.CSVLogger(path(config.RESULTS_FILE), append=bool(resumed)),
    ]


def _read_history(results_path):
    """results.csv as Keras' history dict (columns: epoch, then the metrics)."""
    with open(results_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    keys = [key for key in (rows[0] if rows else {}) if key != "epoch"]
    return {key: [float(row[key]) for row in rows] for key in keys}


def best_epoch_index(history, monitor):
    """The epoch EarlyStopping keeps: the first best value of the monitor (None without one)."""
    values = history.get(monitor, [])
    if not values:
        return None
    return int(np.argmax(values) if config.MONITOR_MODES[monitor] == "max" else np.argmin(values))


def _resume_state(run_dir, net, monitor):
    """Where an interrupted run stopped: epochs done, early-stopping state, weights to start from."""
    path = lambda name: os.path.join(run_dir, name)  # noqa: E731
    history = _read_history(path(config.RESULTS_FILE)) if os.path.exists(path(config.RESULTS_FILE)) else {}
    done = len(history.get(monitor, []))
    if not done or not os.path.exists(path(config.BEST_MODEL_FILE)):
        raise ValueError(f"{run_dir!r} has no finished epoch to resume from; start a new run instead")
    best_index = best_epoch_index(history, monitor)
    best_weights = model_lib.load_model(path(config.BEST_MODEL_FILE)).get_weights()
    last = path(LAST_MODEL_FILE)
    if os.path.exists(last):  # weights and optimizer state at the moment of the interrupt
        from tensorflow import keras

        net = keras.models.load_model(last)
    else:  # e.g. the process was killed: start again from the best epoch with a fresh optimizer
        net.set_weights(best_weights)
    state = {
        "epochs_done": done,
        "best": history[monitor][best_index],
        "best_epoch": best_index,
        "wait": done - 1 - best_index,
        "best_weights": best_weights,
    }
    return net, state


def train(settings, resume_dir=None):
    """Run the whole pipeline; returns (run_dir, metrics dict).

    resume_dir: an interrupted run folder to continue (its args.yaml gives the settings).
    """
    settings = _resolved(settings)
    dataset = load_data(settings)
    data_check = check.summarize(dataset)
    if dataset.recordings:
        print(recordings.format_summary(dataset))
    print(check.format_report(data_check))
    if check.errors(data_check):
        raise ValueError("; ".join(f"{p['message']} (fix: {p['fix']})" for p in check.errors(data_check)))
    if resume_dir:  # the rows the run started with, whatever was added since: no test row is ever trained on
        train_idx, test_idx = _resumed_split(resume_dir, dataset, settings.seed)
    else:
        train_idx, test_idx = data.split_indices(dataset.y, seed=settings.seed)
    _check_options(settings, dataset)
    import tensorflow as tf
    from tensorflow import keras

    strategy = distribute.make_strategy(settings.strategy)
    if strategy:
        print(f"tf.distribute {settings.strategy}: {strategy.num_replicas_in_sync} replicas, "
              f"{strategy.num_replicas_in_sync * settings.batch_size} sequences per step")
    keras.utils.set_random_seed(settings.seed)  # before the weights are made
    net = _new_model(settings, len(dataset.actions), dataset, strategy)
    # Everything that can refuse the input does so before a run folder exists.
    recording = (evaluate.load_recording(dataset.actions, settings.test_data, settings.aliases or (),
                                         settings.any_layout, flag="--test-data") if settings.test_data else None)
    if not resume_dir:
        for folder in recordings.expand(settings.data):
            _check_outside_data(settings.out, folder)
    created = settings.out is None or not os.path.exists(settings.out)  # to remove if nothing is kept
    run_dir = _run_folder(settings.out, resume_dir=resume_dir)
    try:
        path = lambda name: os.path.join(run_dir, name)  # noqa: E731
        run_versions = versions()
        if not resume_dir:  # written first: it proves the folder is writable and says what is running
            _write_args(path(config.ARGS_FILE), settings, run_dir, dataset, run_versions, (train_idx, test_idx))

        num_actions = len(dataset.actions)
        y_train = data.one_hot(dataset.y[train_idx], num_actions)
        y_test = data.one_hot(dataset.y[test_idx], num_actions)
        if settings.stream:  # dataset.X is a memory map: rows are read batch by batch
            arguments = stream.fit_arguments(dataset.X, train_idx, y_train, settings.batch_size, settings.seed,
                                             net.distribute_strategy.num_replicas_in_sync, settings.reshuffle)
        else:
            X_train, X_test = dataset.X[train_idx], dataset.X[test_idx]
            arguments = fit_arguments(X_train, y_train, settings, settings.seed)
        print(
            f"{len(dataset.y)} sequences of {num_actions} actions, frames of {dataset.num_features} values; "
            f"train {len(train_idx)} (of which {config.VALIDATION_SPLIT:.0%} validation), test {len(test_idx)}"
        )

        resumed = None
        if resume_dir:
            with distribute.scope(strategy):
                net, resumed = _resume_state(resume_dir, net, settings.monitor)
            print(f"resuming {run_dir} after epoch {resumed['epochs_done']}")
        started = time.perf_counter()
        try:
            new_history = _fit(
                net,
                arguments,
                settings,
                seed=settings.seed,
                # Streamed, the BatchNorm statistics read the training rows from the memory map.
                statistics=(dataset.X, train_idx[:data.fit_rows(len(train_idx))]) if settings.stream else None,
                # A run whose early stopping had already ended trains no further epoch when resumed.
                epochs=(resumed["epochs_done"] if resumed and resumed["wait"] >= settings.patience
                        else settings.epochs),
                initial_epoch=resumed["epochs_done"] if resumed else 0,
                callbacks=_callbacks(keras, path, settings, resumed),
                verbose=default_verbose() if settings.verbose is None else settings.verbose,
            ).history
        except KeyboardInterrupt:
            _drop_partials(run_dir)  # Ctrl-C may land in the middle of a checkpoint write
            if not os.path.exists(path(config.BEST_MODEL_FILE)):
                if not resume_dir:  # nothing learned yet: the folder must not block the same --out next time
                    _discard(run_dir, created)
                raise TrainingInterrupted(f"interrupted before the first epoch ended: nothing to keep, {run_dir} "
                                          f"removed; start a new run") from None
            export.atomic_write(path(LAST_MODEL_FILE), net.save)
            if os.path.exists(path(config.RESULTS_FILE)):
                evaluate.plot_history(_read_history(path(config.RESULTS_FILE)), path(config.HISTORY_PLOT_FILE))
            raise TrainingInterrupted(
                f"interrupted: {run_dir} keeps {config.BEST_MODEL_FILE} (the best epoch so far), "
                f"{config.RESULTS_FILE} and {LAST_MODEL_FILE}. Continue with: signtrain train --resume {run_dir}"
            ) from None
        except (tf.errors.ResourceExhaustedError, OSError) as error:
            # TensorFlow raises ResourceExhaustedError for a full disk too: tell the two apart.
            if _disk_full(error, run_dir):
                _drop_partials(run_dir)
                message = _disk_full_message(run_dir, path(config.BEST_MODEL_FILE))
                if not os.path.exists(path(config.BEST_MODEL_FILE)) and not resume_dir:
                    _discard(run_dir, created)  # nothing learned: the folder must not block the same --out
                raise OSError(message) from None
            if isinstance(error, OSError):
                raise
            raise MemoryError(
                f"{diagnose.OUT_OF_MEMORY}: out of memory at batch size {settings.batch_size}. Try --batch-size 8, "
                f"and close other notebooks on the same GPU (see {diagnose.section(diagnose.OUT_OF_MEMORY)})."
            ) from None
        train_seconds = time.perf_counter() - started
        history = _read_history(path(config.RESULTS_FILE)) if resumed else new_history

        # Judge the model as the live app will run it: reloaded from disk, in inference mode
        # (BatchNorm on its moving averages, no dropout). Never trust training-mode accuracy.
        best = model_lib.compile_model(model_lib.load_model(path(config.BEST_MODEL_FILE)))
        h5_keras3_only = export.save_h5(best, path(config.MODEL_FILE))
        export.save_actions(dataset.actions, path(config.ACTIONS_FILE))
        if resumed:  # a run stopped while writing its files: what it wrote is its own, made again
            export.remove_path(path(config.SAVEDMODEL_DIR))
        export.export_savedmodel(best, path(config.SAVEDMODEL_DIR))
        shipped = model_lib.load_model(path(config.MODEL_FILE))
        if settings.stream:
            test_loss, test_accuracy = (float(v) for v in stream.evaluate(best, dataset.X, test_idx, y_test))
            probabilities = stream.predict(shipped, dataset.X, test_idx)
            in_memory = stream.predict(net, dataset.X, test_idx)
            # The exports are checked on the first READ_ROWS test sequences, read into memory.
            X_test = stream.sample(dataset.X, test_idx)
        else:
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

        n_val = len(train_idx) - data.fit_rows(len(train_idx))
        val_accuracy = history.get("val_categorical_accuracy", [])
        best_index = best_epoch_index(history, settings.monitor)  # the epoch EarlyStopping restored
        metrics = {
            "test_accuracy": test_accuracy,
            "test_accuracy_ci95": list(interval),
            "test_correct": correct,
            "test_loss": test_loss,
            "best_val_accuracy": float(val_accuracy[best_index]) if best_index is not None and val_accuracy else None,
            "best_epoch": best_index + 1 if best_index is not None else None,
            "monitor": settings.monitor,
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
            "data_check": {key: value for key, value in data_check.items()
                           if key not in ("skipped_sequences", "ignored")},
            "test_sequences": [list(dataset.sequences[i]) for i in test_idx],
            # On a resume the in-memory model holds the weights EarlyStopping restored; they must match the file.
            "reload_max_abs_diff": float(np.max(np.abs(probabilities - in_memory))),
            "train_seconds": train_seconds,
            "resumed": bool(resumed),
            "seed": settings.seed,
            # Exact BatchNorm statistics before every validation (signtrain.precise_bn), over the training
            # rows (a seeded sample of precise_bn.STATISTICS_ROWS of them when there are more).
            "precise_bn": settings.precise_bn,
            "reshuffle": settings.reshuffle,
            "features": settings.features,
            # Where the sequences came from: one entry per --data recording (signtrain.recordings).
            "recordings": recordings.summary(dataset),
            "versions": run_versions,
        }
        # Keras 2 (tf_keras, TF <= 2.15 apps) loads action_model.h5 too, unless the rewrite met something new.
        metrics["h5_loads_in"] = ["keras3"] + ([] if h5_keras3_only else ["keras2"])
        if h5_keras3_only:
            metrics["h5_keras3_only_because"] = h5_keras3_only
        failed_exports = []
        if settings.export:  # one format failing keeps the run and the other formats
            metrics["exports"] = {}
            for name in settings.export:
                try:
                    metrics["exports"].update(export.export_and_check(best, run_dir, [name], X_test,
                                                                      probabilities[:len(X_test)],
                                                                      written=("savedmodel",)))
                except (ValueError, ImportError, OSError) as error:
                    metrics["exports"][name] = {"error": str(error)}
                    failed_exports.append((name, error))
        metrics["diagnostics"] = diagnose.diagnose(metrics, history)
        if recording:
            metrics["external_test"] = evaluate.evaluate_recording(shipped, dataset.actions, recording)
        export.write_json(path(config.METRICS_FILE), metrics)
        tf.keras.backend.clear_session()
        if not distribute.is_chief():
            shutil.rmtree(run_dir, ignore_errors=True)
            print("worker done: the chief writes the run folder")
            return run_dir, metrics

        print(report)
        print(diagnose.format_diagnostics(metrics["diagnostics"]))
        if settings.test_data:
            print(evaluate.format_recording_result(metrics["external_test"]))
        print(
            f"test accuracy {test_accuracy:.1%} ({correct}/{len(y_true)}; 95% interval "
            f"{interval[0]:.0%}-{interval[1]:.0%}), best validation accuracy "
            f"{metrics['best_val_accuracy']:.1%} at epoch {metrics['best_epoch']} of "
            f"{metrics['epochs_run']}, {train_seconds:.0f} s"
        )
        print(f"run saved to {run_dir}: {config.MODEL_FILE} and {config.ACTIONS_FILE} go to the live app")
        if h5_keras3_only:
            print(f"{config.MODEL_FILE} loads in Keras 3 (TensorFlow 2.16+) only ({h5_keras3_only}); for a TF <= 2.15 "
                  f"app use signtrain export {run_dir} --format onnx (ONNX Runtime) or tflite")
        else:
            print(f"{config.MODEL_FILE} loads with load_model in Keras 3 (TF 2.16+) and Keras 2 (tf_keras; TF 2.15)")
        if failed_exports:
            names = ",".join(name for name, _ in failed_exports)
            raise ValueError(f"{'; '.join(str(error) for _, error in failed_exports)}. The run itself is complete in "
                             f"{run_dir}; retry with: signtrain export {run_dir} --format {names}")
        return run_dir, metrics
    finally:
        _release(run_dir)


def _write_args(args_path, settings, run_dir, dataset, run_versions, split):
    args = dataclasses.asdict(settings)
    args.pop("verbose")
    train_idx, test_idx = split
    args.update(
        # The split, in training order (validation_split takes the last 15% of "train"): --resume
        # trains and tests on exactly these sequences, whatever the folder holds by then.
        split={"train": [_sequence_name(dataset, i) for i in train_idx],
               "test": [_sequence_name(dataset, i) for i in test_idx]},
        out=run_dir,
        actions=dataset.actions,
        test_size=config.TEST_SIZE,
        validation_split=config.VALIDATION_SPLIT,
        sequence_length=int(dataset.X.shape[1]),
        num_features=dataset.num_features,
        versions=run_versions,
    )
    export.write_yaml(args_path, args)


def _sequence_name(dataset, row):
    action, sequence = dataset.sequences[row]
    return f"{action}/{sequence}"


def _resumed_split(run_dir, dataset, seed):
    """(train_idx, test_idx) of the sequences an interrupted run recorded in its args.yaml."""
    import yaml

    with open(os.path.join(run_dir, config.ARGS_FILE), encoding="utf-8") as handle:
        split = (yaml.safe_load(handle) or {}).get("split")
    if not split:  # a run from before the split was recorded: the same seed gives the same split
        print(f"note: {run_dir} does not record its split; the seed's split of the folder as it is now is used")
        return data.split_indices(dataset.y, seed=seed)
    row_of = {_sequence_name(dataset, row): row for row in range(len(dataset.y))}
    missing = [name for name in split["train"] + split["test"] if name not in row_of]
    if missing:
        raise ValueError(f"{len(missing)} sequences the run in {run_dir} trained or tested on are gone or no longer "
                         f"usable (e.g. {', '.join(missing[:3])}): resuming would change its split. Put them back, "
                         f"or start a new run")
    added = len(row_of) - len(split["train"]) - len(split["test"])
    if added:
        print(f"note: {added} sequences added since {run_dir} started are not used by the resumed run "
              f"(a new run trains on them)")
    return (np.array([row_of[name] for name in split["train"]]), np.array([row_of[name] for name in split["test"]]))


def settings_from_run(run_dir):
    """The settings an earlier run recorded in its args.yaml (for --resume)."""
    import yaml

    args_path = os.path.join(run_dir, config.ARGS_FILE)
    if not os.path.exists(args_path):
        raise FileNotFoundError(f"{args_path} not found: --resume takes a run folder that signtrain started")
    with open(args_path, encoding="utf-8") as handle:
        try:
            args = yaml.safe_load(handle)
        except yaml.YAMLError as error:
            raise ValueError(f"{args_path} is not readable YAML ({error}); --resume needs the args.yaml a run "
                             f"wrote") from None
    if not isinstance(args, dict) or "data" not in args:
        raise ValueError(f"{args_path} does not hold a run's settings; --resume needs the args.yaml a run wrote")
    # metrics.json is the last file a run writes: without it a run stopped while writing its files
    # (after training) is resumable, and resuming only writes them.
    if os.path.exists(os.path.join(run_dir, config.METRICS_FILE)):
        raise FileExistsError(f"{run_dir} finished already ({config.METRICS_FILE} is there); nothing to resume")
    fields = {field.name for field in dataclasses.fields(TrainSettings)}
    args.setdefault("precise_bn", False)  # a run started before exact BatchNorm statistics existed
    args.setdefault("reshuffle", False)
    return TrainSettings(**{key: value for key, value in args.items() if key in fields and key != "out"})
