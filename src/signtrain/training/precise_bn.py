"""Exact BatchNorm statistics before every validation (on by default; `--no-precise-bn` turns it off).

Why: the spec puts a BatchNormalization layer after each LSTM. In training it normalises with the
batch's own statistics; validation, the checkpoint choice and the live app use its moving averages
instead (momentum 0.99, ~15 steps an epoch), which lag far behind weights that change quickly.
The inference-mode accuracy then swings from epoch to epoch (2% to 73% on the demo data) and
EarlyStopping keeps whichever epoch happened to line up: a lottery over seeds.

What: before each validation, every BatchNorm layer's moving mean and variance are set to the exact
mean and (biased, as BatchNorm computes it) variance of its input over the training rows, as the
model computes that input at inference (dropout off, the BatchNorm layers before it already
updated), layer by layer. Nothing else changes: no layer, no weight that is trained, no
hyperparameter; the values BatchNorm is meant to hold are just computed exactly instead of as a
lagging average. Known as precise BatchNorm (Wu & Johnson, "Rethinking 'Batch' in BatchNorm",
2021; Detectron2's PreciseBN hook); measured here in bench/stability.py.

The rows: every training row up to STATISTICS_ROWS, else a seeded sample of that many, drawn once
(with --stream they are read from the memory map a chunk at a time). Never a validation or test row.
"""

import numpy as np

from signtrain.model import network as model_lib

STATISTICS_ROWS = 2048  # ~400 MB of float32 frames at most, read a chunk at a time
CHUNK_ROWS = 256


def statistics_rows(count, seed, limit=STATISTICS_ROWS):
    """The training rows (positions 0..count-1) the statistics are computed over."""
    if count <= limit:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, limit, replace=False))


def _read_chunks(X, rows):
    """X[rows] as float32 arrays of CHUNK_ROWS rows (X may be a memory map: read in file order).
    Views of X, no copy, where rows are all of an in-memory float32 X in order (the usual case)."""
    from signtrain.training.stream import read_rows

    whole = (type(X) is np.ndarray and X.dtype == np.float32 and len(rows) == len(X)
             and np.array_equal(rows, np.arange(len(X))))
    for start in range(0, len(rows), CHUNK_ROWS):
        yield X[start:start + CHUNK_ROWS] if whole else read_rows(X, rows[start:start + CHUNK_ROWS])


def _moments(chunks, axis):
    """Mean and biased variance of the chunks over every axis but `axis`, in float64."""
    values = np.concatenate([np.asarray(chunk, np.float64) for chunk in chunks])
    moved = np.moveaxis(values, axis, -1).reshape(-1, values.shape[axis])
    return moved.mean(axis=0), moved.var(axis=0)


def _stages(model):
    """[(run, layer)]: for each BatchNormalization layer, a compiled function that takes the input of
    the stage before (the model's input for the first) to this layer's input, at inference."""
    import tensorflow as tf
    from tensorflow import keras

    front_end, stack = model_lib.front_end_and_stack(model)
    stages, pending = [], [front_end] if front_end is not None else []
    for layer in stack:
        if isinstance(layer, keras.layers.BatchNormalization):
            def run(hidden, layers=tuple(pending)):
                for step in layers:
                    hidden = step(hidden, training=False)
                return hidden

            stages.append((tf.function(run, reduce_retracing=True), layer))
            pending = []
        pending.append(layer)
    return stages


def _one_pass(model):
    """A function x -> None that sets every BatchNorm layer to the exact statistics of its input over
    x: the whole inference pass in one compiled call, each LSTM run by signtrain.training.fast's kernel (the first
    one's input projection as one product), each BatchNorm normalizing with the statistics just
    computed, as it will once they are assigned. For the CPU fast path and rows held in memory: the
    same values as _stages to float32 rounding (tests/test_precise_bn.py), at a fraction of the time."""
    import tensorflow as tf
    from tensorflow import keras

    from signtrain.training import fast

    front_end, stack = model_lib.front_end_and_stack(model)
    last = max(index for index, layer in enumerate(stack) if isinstance(layer, keras.layers.BatchNormalization))
    kernels = {id(layer): fast.lstm_function(tf, layer.cell.units, layer.return_sequences, position > 0)
               for position, layer in enumerate(stack) if isinstance(layer, keras.layers.LSTM)}

    def run(x):
        hidden, moments = front_end(x, training=False) if front_end is not None else x, []
        for layer in stack[:last + 1]:
            if isinstance(layer, keras.layers.LSTM):
                cell = layer.cell
                hidden = kernels[id(layer)](hidden, tf.convert_to_tensor(cell.kernel),
                                            tf.convert_to_tensor(cell.recurrent_kernel), tf.convert_to_tensor(cell.bias))
            elif isinstance(layer, keras.layers.BatchNormalization):
                wide = tf.cast(hidden, tf.float64)  # float64 sums, as _moments
                mean = tf.reduce_mean(wide, axis=list(range(len(hidden.shape) - 1)))
                variance = tf.reduce_mean(tf.square(wide - mean), axis=list(range(len(hidden.shape) - 1)))
                moments.append((mean, variance))
                hidden = tf.nn.batch_normalization(
                    hidden, tf.cast(mean, hidden.dtype), tf.cast(variance, hidden.dtype),
                    layer.beta if layer.center else None, layer.gamma if layer.scale else None, layer.epsilon)
            else:
                hidden = layer(hidden, training=False)
        return moments

    compiled = tf.function(run, reduce_retracing=True)
    norms = [layer for layer in stack if isinstance(layer, keras.layers.BatchNormalization)]

    def update(x):
        for layer, (mean, variance) in zip(norms, compiled(x)):
            layer.moving_mean.assign(tf.cast(mean, tf.float32))
            layer.moving_variance.assign(tf.cast(variance, tf.float32))

    return update


def _one_pass_fits(model):
    """The one-pass function handles the spec's stack: BatchNorm over the last axis, LSTMs fast.supported."""
    from tensorflow import keras

    from signtrain.training import fast

    layers = model_lib.front_end_and_stack(model)[1]
    return fast.supported(model) and all(layer.axis in (-1, [-1], 2, [2]) for layer in layers
                                         if isinstance(layer, keras.layers.BatchNormalization))


def recompute(model, X, rows, stages=None):
    """Set every BatchNormalization layer of `model` to the exact statistics of its input over X[rows].

    Returns {layer name: (mean, variance)} as assigned. One inference pass through the model: the
    activations of the rows are carried from one BatchNorm layer to the next. stages: _stages(model),
    made once by a caller that recomputes every epoch.
    """
    return _assign(list(_read_chunks(X, np.asarray(rows))), stages if stages is not None else _stages(model))


def _assign(chunks, stages):
    """recompute() on the rows already read, in chunks."""
    hidden, assigned = chunks, {}
    for run, layer in stages:
        hidden = [run(chunk) for chunk in hidden]
        mean, variance = _moments(hidden, layer.axis if isinstance(layer.axis, int) else layer.axis[0])
        layer.moving_mean.assign(mean.astype(np.float32))
        layer.moving_variance.assign(variance.astype(np.float32))
        assigned[layer.name] = (mean, variance)
    return assigned


def callback(X, rows, fast_path=False):
    """A Keras callback that recomputes the statistics over X[rows] before every validation.

    Keras' fit runs validation through evaluate(callbacks=...), whose on_test_begin comes after the
    epoch's last training step: the statistics match the weights validation then scores, and
    ModelCheckpoint and EarlyStopping's restored best weights hold them. fast_path (the CPU fast
    path trains the model): one compiled pass with its kernels (_one_pass) when the rows are in memory.
    """
    from tensorflow import keras

    rows = np.asarray(rows)
    # In memory the rows are read once, not every epoch; a memory map (--stream) is read again at
    # each validation, so that memory never holds them in between.
    kept = None if isinstance(X, np.memmap) else list(_read_chunks(X, rows))

    class PreciseBatchNorm(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.one_pass = _one_pass(self.model) if fast_path and kept is not None and _one_pass_fits(self.model) else None
            self.stages = None if self.one_pass else _stages(self.model)
            self.rows = np.concatenate(kept) if self.one_pass else None  # one call over every row

        def on_test_begin(self, logs=None):
            if self.one_pass is not None:
                self.one_pass(self.rows)
            else:
                _assign(kept if kept is not None else list(_read_chunks(X, rows)), self.stages)

    return PreciseBatchNorm()
