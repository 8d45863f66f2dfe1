"""The training rows as batches, in the order a seed gives: one definition for every path.

The fast CPU path (signtrain.training.fast), Keras' own loop (signtrain.training.fitting) and train --stream
(signtrain.training.stream) all read their batches from here, so a --seed gives the same batches on each:
tf.data's seeded shuffle, not Keras' (which, after keras.utils.set_random_seed, repeats the first
epoch's order every epoch: tests/test_fast.py).
"""

import numpy as np

# Validation runs in inference mode (no batch statistics): bigger batches give the same numbers in
# fewer calls.
VALIDATION_BATCH_SIZE = 256


def batch_order(rows, seed):
    """The order of the training rows in every epoch: tf.data's seeded shuffle, drawn once.

    The same order signtrain has used since its first fast path (a tf.data shuffle with this seed
    and reshuffle_each_iteration=False, under keras.utils.set_random_seed(seed)), so a --seed gives
    the same batches as before (within one TensorFlow version: the permutation is its shuffle's);
    train --stream uses it too (signtrain.training.stream).
    """
    import tensorflow as tf

    shuffled = tf.data.Dataset.range(rows).shuffle(max(rows, 1), seed=seed, reshuffle_each_iteration=False)
    return np.fromiter(shuffled.as_numpy_iterator(), dtype=np.int64, count=rows)


def epoch_batches(rows, batch_size, seed):
    """Batches of row positions, a new order every epoch (each iteration of the pipeline), drawn from
    the seed: the same orders for the same seed, on every path and every Keras version (it is
    tf.data's seeded shuffle, not Keras').

    What `model.fit(x, y, shuffle=True)` does in the spec's notebook, which sets no seed. After
    keras.utils.set_random_seed, Keras' own shuffle repeats the first epoch's order every epoch
    (tests/test_fast.py), so a seeded signtrain run used to see one order only (batch_order).
    """
    import tensorflow as tf

    return (tf.data.Dataset.range(rows).shuffle(max(rows, 1), seed=seed, reshuffle_each_iteration=True)
            .batch(batch_size))


def datasets(x, y, validation_data, batch_size, seed, reshuffle=False, validation_batch_size=None,
             hand_dropout=False):
    """Training and validation rows as float32 tf.data pipelines for fit().

    reshuffle=False: the training rows are shuffled once, from the seed, and every epoch sees the
    same batches: that is what Keras 3's fit() does with arrays after keras.utils.set_random_seed
    (its shuffle op starts from the same state for each epoch's iterator); the plain recipe.
    reshuffle=True: a new seeded order every epoch (epoch_batches), rows gathered per batch as
    Keras' own array adapter does. hand_dropout: the training batches (only they) go through
    signtrain.training.hand_dropout, a new draw every epoch. With the BatchNorm statistics kept exactly (signtrain.training.precise_bn)
    that trained better over seeds (bench/results/stability.md); with Keras' lagging moving
    averages, reshuffling every epoch trained worse (43-85% best validation accuracy against 97.6%
    on the demo set, three runs of an earlier version).
    """
    import tensorflow as tf

    x_val, y_val = validation_data
    as32 = lambda *arrays: tuple(np.asarray(a, np.float32) for a in arrays)  # noqa: E731
    if reshuffle:
        rows = tf.data.Dataset.from_tensors(as32(x, y)).repeat()
        train = tf.data.Dataset.zip((epoch_batches(len(x), batch_size, seed), rows)).map(
            lambda batch, xy: (tf.gather(xy[0], batch), tf.gather(xy[1], batch))).prefetch(2)
    else:
        # One order for all epochs (batch_order); the batches are cut once and kept (cache): no epoch
        # copies rows into a shuffle buffer or into batches again (that copying measured ~4 ms a batch
        # here, a tenth of a training step).
        order = batch_order(len(x), seed)
        train = tf.data.Dataset.from_tensor_slices(as32(np.asarray(x)[order], np.asarray(y)[order])).batch(
            batch_size).cache()
    if hand_dropout:
        from signtrain.training import hand_dropout as hands

        train = hands.apply(train, seed)
    # Validation runs in inference mode (no batch statistics): bigger batches give the same numbers
    # in fewer calls.
    validation = tf.data.Dataset.from_tensor_slices(as32(x_val, y_val)).batch(
        validation_batch_size or VALIDATION_BATCH_SIZE).cache()
    return {"x": train, "validation_data": validation}
