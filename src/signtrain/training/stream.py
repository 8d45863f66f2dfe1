"""Training on data bigger than memory: `signtrain train --stream`.

`data.load_dataset(stream=True)` writes every sequence into the cache beside the data as it
reads it (signtrain.data.cache.pack) and leaves `X` as a read-only memory map of its rows' .npy. Here the rows
of a batch are read from the map when tf.data asks for the batch, so memory holds a few batches,
never the data set: the operating system pages rows in and drops them again.

What is trained is what the in-memory path trains: the same rows, Keras' validation_split rows
(the last 15% of the training rows) held out, the training rows in one order drawn once from the
seed (signtrain.training.batches.datasets draws the same order), the same batch size. Prediction and
evaluation on the test rows read them a chunk at a time.
"""

import numpy as np

from signtrain.data import dataset as data
from signtrain.training import distribute

# Rows read at once outside training (validation, prediction, evaluation): ~50 MB of 30 x 1662 frames.
READ_ROWS = 256


def read_rows(X, rows):
    """X[rows] as a float32 array in the order of rows, read from the file in row order (kinder to a disk)."""
    rows = np.asarray(rows)
    in_file_order = np.argsort(rows, kind="stable")
    out = np.empty((len(rows), *X.shape[1:]), np.float32)
    out[in_file_order] = X[rows[in_file_order]]
    return out


def rows_dataset(X, rows, targets, batch_size, reshuffle_seed=None, hand_dropout_seed=None):
    """A tf.data pipeline of (X[rows] as float32, targets) batches, in the order of rows; with
    reshuffle_seed, in a new order every epoch (signtrain.training.batches.epoch_batches); with
    hand_dropout_seed, through signtrain.training.hand_dropout (training batches only).

    Each batch is read from X (a memory map) only when the pipeline needs it, two batches ahead.
    """
    import tensorflow as tf

    from signtrain.training import batches

    rows = np.asarray(rows)
    targets = np.asarray(targets, np.float32)
    signature = (tf.TensorSpec((None, *X.shape[1:]), tf.float32),
                 tf.TensorSpec((None, targets.shape[1]), tf.float32))
    if reshuffle_seed is not None:
        def read(positions):
            return read_rows(X, rows[positions]), targets[positions]

        def read_batch(positions):
            frames, labels = tf.numpy_function(read, [positions], (tf.float32, tf.float32))
            return tf.ensure_shape(frames, signature[0].shape), tf.ensure_shape(labels, signature[1].shape)

        return _dropping_hands(batches.epoch_batches(len(rows), batch_size, reshuffle_seed).map(read_batch),
                               hand_dropout_seed).prefetch(2)

    def in_order():
        for start in range(0, len(rows), batch_size):
            yield read_rows(X, rows[start:start + batch_size]), targets[start:start + batch_size]

    # The number of batches declared: Keras then knows an epoch's steps (a generator's are unknown).
    count = -(-len(rows) // batch_size)
    return _dropping_hands(tf.data.Dataset.from_generator(in_order, output_signature=signature)
                           .apply(tf.data.experimental.assert_cardinality(count)), hand_dropout_seed).prefetch(2)


def _dropping_hands(pipeline, seed):
    from signtrain.training import hand_dropout

    return pipeline if seed is None else hand_dropout.apply(pipeline, seed)


def fit_arguments(X, split, y, batch_size, seed, replicas=1, reshuffle=False, hand_dropout=False):
    """x and validation_data for model.fit, streamed from X (y: one-hot targets of every row): the
    split's validation rows (those Keras' validation_split would hold out), its training rows in one
    order drawn from the seed (reshuffle: a new order every epoch, as signtrain.training.batches.datasets).

    With a tf.distribute strategy batch_size is per replica: each step reads replicas x batch_size.
    """
    from signtrain.training import batches

    fit_rows, validation_rows = split.train, split.validation
    validation = rows_dataset(X, validation_rows, y[validation_rows], distribute.validation_batch(
        batches.VALIDATION_BATCH_SIZE, len(validation_rows), replicas))
    dropping = seed if hand_dropout else None
    if reshuffle:
        return {"x": rows_dataset(X, fit_rows, y[fit_rows], batch_size * replicas, reshuffle_seed=seed,
                                  hand_dropout_seed=dropping),
                "validation_data": validation}
    order = batches.batch_order(len(fit_rows), seed)  # what batches.datasets uses
    return {"x": rows_dataset(X, fit_rows[order], y[fit_rows][order], batch_size * replicas,
                              hand_dropout_seed=dropping),
            "validation_data": validation}


def predict(model, X, rows):
    """model.predict on X[rows], READ_ROWS rows at a time."""
    rows = np.asarray(rows)
    return np.concatenate([model.predict(read_rows(X, rows[start:start + READ_ROWS]), verbose=0)
                           for start in range(0, len(rows), READ_ROWS)])


def sample(X, rows, limit=READ_ROWS):
    """The first `limit` of rows, read into memory (for checks that need arrays: exports)."""
    return read_rows(X, np.asarray(rows)[:limit])
