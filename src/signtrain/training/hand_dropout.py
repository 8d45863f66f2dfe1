"""`--hand-dropout`: while training, a hand's values zeroed over random spans of frames, as
MediaPipe does when it loses a hand (light, motion blur, a hand leaving the image).

Why: the people a model fails on are the ones whose hands MediaPipe lost more often than in the
training recordings (26% and 59% of frames without a hand, against 1-19% in training: see
bench/results/real_people.md). A model that has seen a hand vanish mid-sign learns to read the
sign from what is left.

What: in every training batch, for each sequence and each hand independently, with probability
RATE one span of frames (a random start, a length from 1 to the whole sequence) has that hand's 63
values set to 0, the value MediaPipe's recording scripts write for a hand not seen. A new draw
every epoch, from the seed (tf.data's Dataset.random, re-randomized each iteration). Only the
training batches go through it: validation, the exact BatchNorm statistics, the test split and the
saved model never see it (nothing of it is inside the model).
"""

from signtrain import config

RATE = 0.5  # the chance that a hand of a training sequence loses a span, per hand, per epoch
HANDS = ("left_hand", "right_hand")


def drop_hands(frames, seed, rate=RATE):
    """frames (batch, steps, 1662) float32 with each hand's values zeroed over a random span;
    seed: a stateless seed (2 integers) that decides every draw of this batch."""
    import tensorflow as tf

    batch, steps = tf.shape(frames)[0], tf.shape(frames)[1]
    hit_seed, length_seed, start_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    hit = tf.random.stateless_uniform([batch, len(HANDS)], hit_seed) < rate
    length = tf.random.stateless_uniform([batch, len(HANDS)], length_seed, minval=1, maxval=steps + 1,
                                         dtype=tf.int32)
    start = tf.cast(tf.random.stateless_uniform([batch, len(HANDS)], start_seed)
                    * tf.cast(steps - length + 1, tf.float32), tf.int32)
    step = tf.range(steps)[None, :, None]  # (1, steps, 1) against (batch, 1, hands)
    dropped = hit[:, None, :] & (step >= start[:, None, :]) & (step < (start + length)[:, None, :])
    keep = 1.0 - tf.cast(dropped, frames.dtype)  # (batch, steps, hands)
    parts, done = [], 0
    for index, hand in enumerate(HANDS):  # the columns before each hand kept as they are
        block = config.block_slice(hand)
        parts += [tf.ones_like(frames[:, :, done:block.start]),
                  tf.repeat(keep[:, :, index:index + 1], block.stop - block.start, axis=2)]
        done = block.stop
    parts.append(tf.ones_like(frames[:, :, done:]))
    return frames * tf.concat(parts, axis=2)


def apply(dataset, seed):
    """A tf.data pipeline of (frames, targets) batches with drop_hands applied to the frames, a new
    draw every epoch (every iteration of the pipeline), the same draws for the same seed."""
    import tensorflow as tf

    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    return tf.data.Dataset.zip((dataset, seeds)).map(
        lambda batch, pair: (drop_hands(batch[0], pair), *batch[1:]))


def check_layout(num_features):
    """--hand-dropout zeroes the hands' columns of the 1662-value contract."""
    if num_features != config.NUM_FEATURES:
        raise ValueError(f"--hand-dropout needs the 1662-value layout (the hands at {config.block_slice('left_hand').start}"
                         f"-{config.NUM_FEATURES - 1}), the data has {num_features} values per frame; drop "
                         f"--hand-dropout")
