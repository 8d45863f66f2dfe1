"""The fast CPU training path computes what Keras computes, and trains the same model."""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow import keras

from signtrain.data import dataset as data, synth
from signtrain.model import network as model_lib
from signtrain.training import batches, fast, fitting
from signtrain.training.train import TrainSettings


@pytest.mark.parametrize("needs_input_gradient", [True, False])  # BlockLSTMV2 forward / the unrolled loop
@pytest.mark.parametrize("return_sequences", [True, False])
def test_lstm_output_and_gradients_equal_keras(return_sequences, needs_input_gradient):
    rng = np.random.default_rng(0)
    layer = keras.layers.LSTM(8, return_sequences=return_sequences)
    x = tf.constant(rng.normal(size=(3, 5, 7)).astype(np.float32))
    layer(x)
    # A non-trivial bias (Keras starts it at 0, forget gate 1): every gate's gradient is exercised.
    layer.cell.bias.assign(rng.normal(size=32).astype(np.float32))
    weights = rng.normal(size=(3, 5, 8) if return_sequences else (3, 8)).astype(np.float32)
    lstm = fast.lstm_function(tf, 8, return_sequences, needs_input_gradient=needs_input_gradient)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        expected = layer(x, training=True)
        expected_loss = tf.reduce_sum(expected * weights)
        got = lstm(x, tf.convert_to_tensor(layer.cell.kernel), tf.convert_to_tensor(layer.cell.recurrent_kernel),
                   tf.convert_to_tensor(layer.cell.bias))
        got_loss = tf.reduce_sum(got * weights)
    variables = ([x] if needs_input_gradient else []) + list(layer.trainable_weights)
    names = (["input"] if needs_input_gradient else []) + ["kernel", "recurrent_kernel", "bias"]
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-6)
    for name, want, have in zip(names, tape.gradient(expected_loss, variables), tape.gradient(got_loss, variables),
                                strict=True):
        assert np.abs(want).max() > 1e-3  # a real gradient, not zeros on both sides
        np.testing.assert_allclose(have, want, atol=1e-5, err_msg=name)


def _twin_models(normalize):
    keras.utils.set_random_seed(3)
    reference = model_lib.compile_model(model_lib.build_model(4, normalize=normalize))
    twin = model_lib.compile_model(model_lib.build_model(4, normalize=normalize))
    twin.set_weights(reference.get_weights())
    return reference, twin


def _seed_states(net):
    return [v for v in net.variables if "seed_generator_state" in v.path]


@pytest.mark.parametrize("normalize", [False, True])
def test_a_fast_training_step_updates_the_weights_as_keras_does(normalize):
    """Same weights and same dropout masks: one step of each gives the same weights and BatchNorm
    statistics, within float noise (the gradients themselves: test_lstm_output_and_gradients_equal_keras)."""
    X, y = synth.synth_arrays(actions=["Hello", "Yes", "No", "Help"], sequences=4, seed=1)
    x, y = X.astype(np.float32), data.one_hot(y, 4)
    reference, twin = _twin_models(normalize)
    fast.install(twin)
    twin.steps_per_execution = 1
    for state_a, state_b in zip(_seed_states(reference), _seed_states(twin), strict=True):
        state_b.assign(state_a)
    before = [w.copy() for w in reference.get_weights()]
    loss_reference = reference.train_on_batch(x, y)
    loss_twin = twin.train_on_batch(x, y)
    np.testing.assert_allclose(loss_twin, loss_reference, rtol=1e-5)
    changed, differences = 0, []
    for want, have, start in zip(reference.get_weights(), twin.get_weights(), before, strict=True):
        # Adam divides by the root of the squared gradient: where a gradient is ~0, float noise in
        # it moves that weight by a visible fraction of the step (1e-3). The rest agree to ~1e-7.
        np.testing.assert_allclose(have, want, atol=1e-4)
        differences.append(np.abs(have - want).ravel())
        changed += not np.allclose(want, start)
    assert np.mean(np.concatenate(differences) <= 1e-6) > 0.99
    assert changed >= 20  # the step really moved the weights (and the comparison is not of untouched copies)


def test_fit_through_the_fast_path_learns_and_ships_a_plain_keras_model(tmp_path):
    X, y = synth.synth_arrays(actions=["Hello", "Yes", "No"], sequences=12, seed=2)
    keras.utils.set_random_seed(0)
    net = model_lib.compile_model(model_lib.build_model(3))
    settings = TrainSettings(data="unused", fast=True)
    one_hot = data.one_hot(y, 3)
    history = fitting.fit(net, fitting.plan_fit(settings, X, one_hot, data.Split.of(np.arange(len(X)), []), 0), epochs=25, verbose=0).history
    assert len(history["loss"]) == 25 and history["loss"][-1] < history["loss"][0]
    # Learned in training mode. Inference-mode accuracy is not asserted on 36 rows and 25 epochs:
    # the BatchNorm moving statistics have had only ~50 updates (momentum 0.99), and Keras' own fit
    # scored 33% there too. test_realdata's full default run (>= 85% on X_test, reloaded model)
    # and bench/train_speed.py (test accuracy of both paths over 3 seeds) judge it in inference mode.
    assert max(history["categorical_accuracy"][-5:]) >= 0.9
    path = str(tmp_path / "model.h5")
    net.save(path)
    shipped = keras.models.load_model(path, compile=False)  # no custom objects
    assert type(shipped) is keras.Sequential
    assert all(layer.__class__.__module__.startswith("keras") for layer in shipped.layers)
    np.testing.assert_allclose(shipped.predict(X, verbose=0), net.predict(X, verbose=0), atol=1e-5)


def test_other_lstm_settings_are_refused():
    net = keras.Sequential([keras.Input((30, 10)), keras.layers.LSTM(8, activation="relu"), keras.layers.Dense(2)])
    assert not fast.supported(net)
    with pytest.raises(ValueError, match="--no-fast"):
        fast.install(net)
    assert fast.supported(model_lib.build_model(3)) and fast.supported(model_lib.build_model(3, normalize=True))
    # A layer in front of the first LSTM of a Sequential would be skipped by the fast forward pass.
    masked = keras.Sequential([keras.Input((30, 10)), keras.layers.Dense(4), keras.layers.LSTM(8)])
    assert not fast.supported(masked)


def _batches_per_epoch(dataset, epochs=3):
    return [[batch[0][:, 0, 0].numpy().tolist() for batch in dataset] for _ in range(epochs)]


def test_every_epoch_sees_the_batches_keras_fit_would_show_it():
    """Keras 3's fit() on arrays after set_random_seed shuffles once: each epoch the same order.
    The pipeline without reshuffle (the plain recipe, --no-precise-bn) does the same, so it trains
    what Keras' own call trains; the default draws a new order every epoch (test_precise_bn). If
    Keras ever changes, this test says so."""
    rows = np.arange(40, dtype=np.float32).reshape(40, 1, 1)
    targets = np.zeros((40, 1), np.float32)
    pipeline = batches.datasets(rows, targets, (rows[:2], targets[:2]), 16, seed=42)["x"]
    epochs = _batches_per_epoch(pipeline)
    assert epochs[0] == epochs[1] == epochs[2]
    assert sorted(sum(epochs[0], [])) == list(range(40)) and sum(epochs[0], []) != list(range(40))
    assert [len(batch) for batch in epochs[0]] == [16, 16, 8]

    seen = []
    keras.utils.set_random_seed(42)
    probe = keras.Sequential([keras.Input((1, 1)), keras.layers.Flatten(), keras.layers.Dense(1)])
    probe.compile(optimizer="sgd", loss="mse")
    plain_step = probe.train_step

    def recording_step(batch):
        tf.py_function(lambda x: seen.append(x.numpy()[:, 0, 0].tolist()) or 0, [batch[0]], tf.int32)
        return plain_step(batch)

    probe.train_step = recording_step
    probe.fit(rows, targets, batch_size=16, epochs=3, verbose=0)
    assert seen[0:3] == seen[3:6] == seen[6:9] and seen[0] != list(range(16))


def test_the_fused_adam_update_equals_keras_adam_over_many_steps():
    """ResourceApplyAdam on Keras' slot variables: same weights, moments and step count as Keras'
    own Adam after 20 steps of gradients from 1e-8 to 1 (float noise only)."""
    rng = np.random.default_rng(0)
    start = [rng.normal(size=shape).astype(np.float32) for shape in [(50, 8), (8,)]]
    gradients = [[(rng.normal(size=w.shape) * 10.0 ** rng.integers(-8, 1)).astype(np.float32) for w in start]
                 for _ in range(20)]
    results = []
    for fused in (False, True):
        variables = [keras.Variable(w) for w in start]
        optimizer = keras.optimizers.Adam(learning_rate=1e-2)
        optimizer.build(variables)
        if fused:
            optimizer.update_step = fast._fused_adam_update(optimizer)
        step = tf.function(lambda grads: optimizer.apply_gradients(zip(grads, variables)))  # noqa: B023
        for grads in gradients:
            step([tf.constant(g) for g in grads])
        results.append(([v.numpy() for v in variables], [m.numpy() for m in optimizer._momentums],
                        [v.numpy() for v in optimizer._velocities], int(optimizer.iterations.numpy())))
    (weights, momentums, velocities, steps), (fused_weights, fused_momentums, fused_velocities, fused_steps) = results
    assert steps == fused_steps == 20
    for want, have in zip(weights + momentums + velocities, fused_weights + fused_momentums + fused_velocities):
        np.testing.assert_allclose(have, want, atol=1e-6, rtol=1e-5)
    assert not np.allclose(fused_weights[0], start[0], atol=1e-2)  # the steps really moved the weights
    # Adam variants whose update differs keep Keras' own update step.
    assert fast._fused_adam_update(keras.optimizers.Adam(amsgrad=True)) is None
    assert fast._fused_adam_update(keras.optimizers.AdamW()) is None
    assert fast._fused_adam_update(keras.optimizers.SGD()) is None


def test_the_batch_order_is_a_permutation_given_by_the_seed():
    """A --seed gives the same batches on every run (and --stream the same order): drawn, as a run
    draws it, after keras.utils.set_random_seed(seed), it is a permutation of the rows that the same
    seed gives again whatever ran before, and another seed gives another one. Which permutation is
    TensorFlow's shuffle's to decide: a golden list would fail on a TensorFlow upgrade with no
    signtrain bug."""

    def drawn(rows, seed):
        keras.utils.set_random_seed(seed)  # what train.prepare does before anything is drawn
        return batches.batch_order(rows, seed).tolist()

    first = drawn(229, 1)
    tf.random.uniform([5])  # TensorFlow's own global draws in between change nothing
    batches.batch_order(50, 3)
    assert sorted(first) == list(range(229)) and first == drawn(229, 1)
    assert first != list(range(229)) and first != drawn(229, 2)
    assert sorted(drawn(20, 42)) == list(range(20))


def test_a_keras_without_the_internals_falls_back_to_its_own_loop_with_one_warning(monkeypatch):
    assert fast.missing_private_api() == []  # this Keras has them all
    monkeypatch.setattr(fast, "PRIVATE_ADAM_API", fast.PRIVATE_ADAM_API + ("_renamed_in_a_new_keras",))
    assert fast.missing_private_api() == ["Adam._renamed_in_a_new_keras"]
    with pytest.warns(UserWarning, match=r"Keras internals .*Adam\._renamed_in_a_new_keras.*Keras' own loop"):
        assert fast.available() is False
    from signtrain.training.settings import resolved

    with pytest.warns(UserWarning):
        assert resolved(TrainSettings(data="unused")).fast is False
