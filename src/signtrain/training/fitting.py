"""The fit: what model.fit is given (plan_fit, decided once), the spec's callbacks made safe to
interrupt and resume, and where an interrupted run stopped.

The loop is the spec's: model.fit with validation_split=0.15, EarlyStopping on
val_categorical_accuracy with restore_best_weights, ModelCheckpoint(best_model.h5), TensorBoard.
"""

import csv
import dataclasses
import functools
import os

import numpy as np

from signtrain import config, files
from signtrain.data import dataset as data
from signtrain.model import network as model_lib
from signtrain.training import batches, distribute, fast, precise_bn, stream

# Saved on Ctrl-C: the weights and the optimizer state, so --resume continues where it stopped.
LAST_MODEL_FILE = "last_model.keras"


@dataclasses.dataclass
class FitPlan:
    """Everything model.fit is told about the data, decided in one place (plan_fit)."""
    inputs: dict  # net.fit's data arguments: x (y), validation_split or validation_data, batch sizes
    statistics: tuple = None  # (X, rows) BatchNorm's exact statistics are computed over (precise_bn)
    fast: bool = False  # signtrain.training.fast's training step is installed first
    path: str = "spec"  # "spec": the spec's own call; "arrays"; "pipelines" (tf.data); "streamed"


def builder(settings, num_actions, dataset):
    """build(keras=None) -> the run's uncompiled model (Keras 3; or tf_keras for the Keras 2 .h5):
    with --ensemble N, the N members side by side (signtrain.model.ensemble)."""
    return functools.partial(model_lib.build_model, num_actions, dataset.X.shape[1], dataset.num_features,
                             settings.normalize, settings.features, members=settings.ensemble)


def new_model(settings, num_actions, dataset, strategy):
    """The compiled spec model (one member of an ensemble), its variables made under the strategy's
    scope when there is one."""
    with distribute.scope(strategy):
        return model_lib.compile_model(builder(settings, num_actions, dataset)(members=1))


def training_rows(X, y, split, settings, seed):
    """(x, y, validation) of split's rows: the training rows (augmented with --augment: a copy of a
    validation sequence in the training data would inflate the validation accuracy) and the
    validation rows, the ones the spec's validation_split holds out, given explicitly."""
    x, targets = X[split.train], y[split.train]
    if settings.augment:
        from signtrain.model import preprocess

        x, targets = preprocess.augment(x, targets, np.random.default_rng(seed))
    return x, targets, (X[split.validation], y[split.validation])


def _statistics(settings, X, rows, seed):
    """The rows exact BatchNorm statistics are computed over (a seeded sample when there are many)."""
    if not settings.precise_bn:
        return None
    rows = np.asarray(rows)
    return X, rows[precise_bn.statistics_rows(len(rows), seed)]


def plan_fit(settings, X, y, split, seed, replicas=1, streamed=False):
    """The FitPlan for split's rows of X (y: the one-hot targets of every row of X): Keras' own loop
    on the spec's call, or the same rows, the same validation rows and the same batch size as tf.data
    pipelines (the fast CPU path, a new batch order every epoch, several replicas). streamed: X is
    the memory map of --stream, read batch by batch."""
    if streamed:  # batches read from the memory map (signtrain.training.stream)
        inputs = stream.fit_arguments(X, split, y, settings.batch_size, seed, replicas, settings.reshuffle,
                                      settings.hand_dropout)
        return FitPlan(dict(inputs, shuffle=False), _statistics(settings, X, split.train, seed), settings.fast,
                       "streamed")
    pipelines = settings.fast or settings.reshuffle or settings.hand_dropout
    if not pipelines and replicas == 1 and not settings.augment:  # the spec's own call: Keras holds out split.validation
        inputs = {"x": X[split.training], "y": y[split.training], "batch_size": settings.batch_size,
                  "validation_split": config.VALIDATION_SPLIT}
        return FitPlan(inputs, _statistics(settings, X, split.train, seed), False, "spec")
    x, y, validation = training_rows(X, y, split, settings, seed)
    if not pipelines and replicas == 1:  # --augment on Keras' own loop
        inputs = {"x": x, "y": y, "validation_data": validation, "batch_size": settings.batch_size}
        return FitPlan(inputs, _statistics(settings, x, np.arange(len(x)), seed), False, "arrays")
    # --batch-size is per replica: with N devices each step takes N batches, gradients averaged.
    batch_size = settings.batch_size * replicas
    statistics = _statistics(settings, x, np.arange(len(x)), seed)
    if pipelines:
        inputs = batches.datasets(x, y, validation, batch_size, seed, reshuffle=settings.reshuffle,
                                  validation_batch_size=None if replicas == 1 else distribute.validation_batch(
                                      batch_size, len(validation[0]), replicas), hand_dropout=settings.hand_dropout)
        # shuffle=False: the pipeline shuffles itself (Keras would only warn that it ignores shuffle).
        return FitPlan(dict(inputs, shuffle=False), statistics, settings.fast, "pipelines")
    inputs = {"x": x, "y": y, "validation_data": validation, "batch_size": batch_size,
              "validation_batch_size": distribute.validation_batch(batch_size, len(validation[0]), replicas)}
    return FitPlan(inputs, statistics, False, "arrays")


def fit(net, plan, callbacks=(), **kwargs):
    """net.fit on the plan; unless --no-precise-bn, BatchNorm's statistics are recomputed over the
    training rows before every validation (signtrain.training.precise_bn). Ctrl-C and SIGTERM stop it at the
    end of a step (DeferredInterrupt), as KeyboardInterrupt."""
    from tensorflow import keras

    if plan.statistics is not None:
        callbacks = [precise_bn.callback(*plan.statistics, fast_path=plan.fast), *callbacks]
    if plan.fast:
        fast.install(net)
    interrupt = DeferredInterrupt(keras)
    try:
        # Last: a finished epoch is checkpointed and logged before the stop is raised.
        history = net.fit(**plan.inputs, callbacks=[*callbacks, interrupt.callback], **kwargs)
    finally:
        interrupt.restore()
    interrupt.raise_if_pending()  # a signal during the last callbacks of fit still stops the run
    return history


def callbacks(keras, path, settings, resumed):
    """The spec's callbacks, made safe to interrupt and to resume."""

    class AtomicCheckpoint(keras.callbacks.ModelCheckpoint):
        # ModelCheckpoint writes in place; an interrupt mid-write would leave a broken best_model.h5.
        # It writes to a temp name here, renamed into place once complete.
        def __init__(self, final_path, **kwargs):
            super().__init__(files.partial_name(final_path), **kwargs)
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
                self.best, self.wait = resumed.best, resumed.wait
                self.best_epoch, self.best_weights = resumed.best_epoch, resumed.best_weights

    mode = config.MONITOR_MODES[settings.monitor]
    if settings.keep == "last":  # every epoch runs; best_model.h5 holds the last one (the one kept)
        stopping = []
        checkpoint = AtomicCheckpoint(path(config.BEST_MODEL_FILE), save_best_only=False, verbose=0)
    else:
        stopping = [ResumableEarlyStopping(monitor=settings.monitor, mode=mode, patience=settings.patience,
                                           restore_best_weights=True, verbose=1)]
        checkpoint = AtomicCheckpoint(path(config.BEST_MODEL_FILE), monitor=settings.monitor, mode=mode,
                                      save_best_only=True, verbose=0,
                                      initial_value_threshold=resumed.best if resumed else None)
    return [
        stop_on_non_finite(keras),  # first: a NaN step is never checkpointed
        *stopping,
        checkpoint,
        keras.callbacks.TensorBoard(log_dir=path(config.LOGS_DIR)),
        keras.callbacks.CSVLogger(path(config.RESULTS_FILE), append=bool(resumed)),
    ]


class NonFiniteTraining(ArithmeticError):
    """The loss turned NaN or infinite: the weights that follow are not a model."""


def stop_on_non_finite(keras):
    """A callback that raises NonFiniteTraining at the first training step whose loss is not finite
    (Keras' TerminateOnNaN only stops the loop, and the run would then ship the NaN weights)."""

    class StopOnNonFinite(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            loss = (logs or {}).get("loss")
            if loss is not None and not np.isfinite(float(loss)):
                raise NonFiniteTraining(f"the training loss became {float(loss)} at step {batch + 1}")

    return StopOnNonFinite()


def read_history(results_path):
    """results.csv as Keras' history dict (columns: epoch, then the metrics)."""
    with open(results_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    keys = [key for key in (rows[0] if rows else {}) if key != "epoch"]
    return {key: [float(row[key]) for row in rows] for key in keys}


def best_epoch_index(history, monitor, keep="best"):
    """The epoch the run keeps: the first best value of the monitor, as EarlyStopping restores it,
    or with --keep last the last epoch (None without one)."""
    values = history.get(monitor, [])
    if not values:
        return None
    if keep == "last":
        return len(values) - 1
    return int(np.argmax(values) if config.MONITOR_MODES[monitor] == "max" else np.argmin(values))


@dataclasses.dataclass
class Resumed:
    """Where an interrupted run stopped, as its EarlyStopping and ModelCheckpoint continue from it."""
    epochs_done: int
    best: float  # the monitored value of the best epoch
    best_epoch: int  # 0-based
    wait: int  # epochs since the best one
    best_weights: list  # best_model.h5's weights (what EarlyStopping restores)


def resume_state(run_dir, net, monitor):
    """Where an interrupted run stopped: epochs done, early-stopping state, weights to start from."""
    path = lambda name: os.path.join(run_dir, name)  # noqa: E731
    history = read_history(path(config.RESULTS_FILE)) if os.path.exists(path(config.RESULTS_FILE)) else {}
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
    return net, Resumed(epochs_done=done, best=history[monitor][best_index], best_epoch=best_index,
                        wait=done - 1 - best_index, best_weights=best_weights)


class DeferredInterrupt:
    """Ctrl-C (SIGINT) and SIGTERM during fit stop the run at the end of the current training or
    validation step: KeyboardInterrupt is raised from a Keras callback, in plain Python between two
    of TensorFlow's calls, not wherever the signal lands (inside Keras' and TensorFlow's own frames:
    a tf.function trace, a tf.data iterator, a checkpoint write). A second signal raises at once.
    Installed on the main thread only (the only one that may set handlers) and only over handlers
    that are Python's (its own SIGINT one, the CLI's SIGTERM one): ignored signals stay ignored."""

    def __init__(self, keras):
        import signal
        import threading

        self.signal, self.pending, self.previous = signal, False, {}
        deferred = self

        class Stop(keras.callbacks.Callback):
            def _check(self, *args, **kwargs):
                deferred.raise_if_pending()

            on_train_batch_end = on_test_batch_end = on_epoch_begin = on_epoch_end = _check

        self.callback = Stop()
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                if callable(signal.getsignal(signum)):  # not SIG_DFL, SIG_IGN or a handler set outside Python
                    self.previous[signum] = signal.signal(signum, self._request)

    def _request(self, signum, frame):
        if self.pending:  # the user insists: no waiting for the step to end
            self.restore()
            raise KeyboardInterrupt
        self.pending = True

    def raise_if_pending(self):
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt

    def restore(self):
        for signum, handler in self.previous.items():
            self.signal.signal(signum, handler)
        self.previous = {}
