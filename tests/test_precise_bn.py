"""Exact BatchNorm statistics (signtrain.training.precise_bn): the numbers, where they are computed, and that
they change nothing but the statistics."""

import os

import numpy as np
import pytest
from tensorflow import keras

from signtrain import cli, config
from signtrain.data import dataset as data, synth
from signtrain.model import network as model_lib
from signtrain.training import fitting, precise_bn
from signtrain.training.train import TrainSettings


def numpy_statistics(net, X):
    """[(mean, variance)] of every BatchNorm input over X, each input computed by Keras'
    own layers at inference (the BatchNorm layers before it as they now are), statistics in numpy."""
    front_end, stack = model_lib.front_end_and_stack(net)  # the --normalize layers, then the spec's chain
    hidden, found = (X if front_end is None else front_end(X, training=False)), []
    for layer in stack:
        if isinstance(layer, keras.layers.BatchNormalization):
            values = np.asarray(hidden, np.float64).reshape(-1, np.shape(hidden)[-1])
            found.append((values.mean(axis=0), values.var(axis=0)))
        hidden = layer(hidden, training=False)
    return found


def stored_statistics(net):
    return [(layer.moving_mean.numpy(), layer.moving_variance.numpy())
            for layer in net.layers if isinstance(layer, keras.layers.BatchNormalization)]


def assert_statistics_equal(got, want, rtol=1e-4, atol=1e-6):
    assert len(got) == len(want) == 3
    for index, (pair, expected_pair) in enumerate(zip(got, want)):
        for have, expected in zip(pair, expected_pair, strict=True):
            np.testing.assert_allclose(have, expected, rtol=rtol, atol=atol, err_msg=f"BatchNorm layer {index}")


@pytest.fixture(scope="module")
def frames():
    X, y = synth.synth_arrays(actions=["Hello", "Yes", "No", "Help"], sequences=8, seed=3)
    return X.astype(np.float32), y


@pytest.mark.parametrize("normalize", [False, True])
def test_recompute_sets_the_exact_statistics_of_each_layers_input(frames, normalize):
    X, _ = frames
    keras.utils.set_random_seed(0)
    net = model_lib.build_model(4, normalize=normalize)
    before = stored_statistics(net)  # fresh layers: mean 0, variance 1
    rows = np.array([0, 3, 5, 8, 13, 21, 30, 31])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(precise_bn, "CHUNK_ROWS", 3)  # several chunks: the statistics still cover every row
        precise_bn.recompute(net, X, rows)
    assert_statistics_equal(stored_statistics(net), numpy_statistics(net, X[rows]))
    assert not np.allclose(before[0][1], stored_statistics(net)[0][1])


@pytest.mark.parametrize("kind", [{}, {"features": "relative"}])
def test_the_fast_paths_one_pass_gives_the_statistics_keras_layers_give(frames, kind):
    """On the CPU fast path the statistics come from one compiled pass with signtrain.training.fast's
    kernels (issue 29): the same numbers as Keras' own layers to float32 rounding. The bound is the
    float32 product's: the first LSTM's input projection sums 1662 terms in another order, relative
    error up to 1662 * 2**-24 ~ 1e-4 of the sum of magnitudes (Higham's gamma_n)."""
    X, y = frames
    keras.utils.set_random_seed(1)
    net = model_lib.compile_model(model_lib.build_model(4, **kind))
    net.fit(X, data.one_hot(y, 4), epochs=1, verbose=0)  # weights away from their initial values
    assert precise_bn._one_pass_fits(net)
    precise_bn._one_pass(net)(X)  # sets the statistics
    assert_statistics_equal(stored_statistics(net), numpy_statistics(net, X), rtol=1662 * 2.0 ** -24, atol=1e-6)


def test_statistics_rows_are_all_rows_or_a_seeded_sample():
    np.testing.assert_array_equal(precise_bn.statistics_rows(5, seed=1), np.arange(5))
    sample = precise_bn.statistics_rows(5000, seed=1, limit=100)
    assert len(sample) == len(set(sample.tolist())) == 100 and sample.max() < 5000
    np.testing.assert_array_equal(sample, np.sort(sample))
    np.testing.assert_array_equal(sample, precise_bn.statistics_rows(5000, seed=1, limit=100))
    assert not np.array_equal(sample, precise_bn.statistics_rows(5000, seed=2, limit=100))


@pytest.mark.parametrize("fast_path", [True, False])
def test_fit_recomputes_before_every_validation_over_the_training_rows_only(frames, fast_path):
    """After fit, the statistics are those of the training rows (not the validation_split rows) for
    the last epoch's weights, on the fast path and in Keras' own loop; with precise_bn=False the
    same fit leaves Keras' moving averages, which differ."""
    X, y = frames
    one_hot = data.one_hot(y, 4)
    results = {}
    for precise in (True, False):
        keras.utils.set_random_seed(0)
        net = model_lib.compile_model(model_lib.build_model(4))
        settings = TrainSettings(data="unused", fast=fast_path, precise_bn=precise)
        validations = []
        probe = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: validations.append(
            stored_statistics(net)))  # noqa: B023
        fitting.fit(net, fitting.plan_fit(settings, X, one_hot, data.Split.of(np.arange(len(X)), []), 0), epochs=3, verbose=0, callbacks=[probe])
        results[precise] = (net, validations)
    net, validations = results[True]
    split = data.fit_rows(len(X))
    assert_statistics_equal(validations[-1], numpy_statistics(net, X[:split]))
    wrong_rows = numpy_statistics(net, X)  # the validation rows included: not what was computed
    assert not np.allclose(validations[-1][0][0], wrong_rows[0][0],
                           rtol=1e-4, atol=1e-6)
    plain, _ = results[False]
    plain_stats, exact = stored_statistics(plain), numpy_statistics(plain, X[:split])
    assert not np.allclose(plain_stats[1][1], exact[1][1], rtol=1e-2)


def test_a_run_records_it_and_its_best_model_holds_the_exact_statistics(tmp_path):
    data_dir = synth.write_mp_data(str(tmp_path / "MP_Data"), actions=["Hello", "Yes", "No"], sequences=10, seed=4)
    runs = {}
    for flag in ([], ["--no-precise-bn"]):
        out = str(tmp_path / ("plain" if flag else "precise"))
        assert cli.main(["train", "--data", data_dir, "--out", out, "--epochs", "3", *flag]) == 0
        runs[bool(flag)] = out
    import json

    import yaml

    for plain, out in runs.items():
        metrics = json.load(open(os.path.join(out, config.METRICS_FILE)))
        args = yaml.safe_load(open(os.path.join(out, config.ARGS_FILE)))
        assert metrics["precise_bn"] is (not plain) and args["precise_bn"] is (not plain)
    dataset = data.load_dataset(data_dir)
    train_idx, _ = data.split_indices(dataset.y, seed=config.DEFAULT_SEED)
    training_rows = dataset.X[train_idx[:data.fit_rows(len(train_idx))]]
    best = model_lib.load_model(os.path.join(runs[False], config.BEST_MODEL_FILE))
    assert_statistics_equal(stored_statistics(best), numpy_statistics(best, training_rows))
    plain = model_lib.load_model(os.path.join(runs[True], config.BEST_MODEL_FILE))
    # The saved model is the spec's: same layers and configuration either way, only the values differ.
    strip = lambda config_: {k: v for k, v in config_.items() if k != "name"}  # noqa: E731
    assert ([strip(layer.get_config()) for layer in best.layers]
            == [strip(layer.get_config()) for layer in plain.layers])


def test_resuming_a_run_from_before_the_option_keeps_the_plain_recipe(tmp_path):
    import yaml

    from signtrain.training.train import settings_from_run

    run = tmp_path / "old"
    run.mkdir()
    (tmp_path / "MP_Data").mkdir()  # the run's data, where args.yaml says (the tests run in tmp_path)
    (run / config.ARGS_FILE).write_text(yaml.safe_dump({"data": "MP_Data", "epochs": 5}))
    assert settings_from_run(str(run)).precise_bn is False
    (run / config.ARGS_FILE).write_text(yaml.safe_dump({"data": "MP_Data", "precise_bn": True}))
    assert settings_from_run(str(run)).precise_bn is True


@pytest.mark.parametrize("fast_path", [False, True])
def test_no_precise_bn_trains_exactly_the_plain_recipe(frames, fast_path):
    """--no-precise-bn: the same weights, to the bit, as the plain recipe's own call: the spec's
    model.fit(x, y, validation_split=0.15, batch_size=16) in Keras' loop, or the fast path on its
    batches drawn once (what signtrain trained before exact statistics existed)."""
    from signtrain.training import batches, fast

    X, y = frames
    one_hot = data.one_hot(y, 4)
    weights = []
    for through_fit in (True, False):
        keras.utils.set_random_seed(5)
        net = model_lib.compile_model(model_lib.build_model(4))
        settings = TrainSettings(data="unused", fast=fast_path, precise_bn=False)
        if through_fit:
            fitting.fit(net, fitting.plan_fit(settings, X, one_hot, data.Split.of(np.arange(len(X)), []), 5), epochs=2, verbose=0)
        elif fast_path:
            split = data.fit_rows(len(X))
            fast.install(net)
            net.fit(**batches.datasets(X[:split], one_hot[:split], (X[split:], one_hot[split:]), 16, 5), shuffle=False,
                    epochs=2, verbose=0)
        else:
            net.fit(X, one_hot, validation_split=config.VALIDATION_SPLIT, batch_size=16, epochs=2, verbose=0)
        weights.append(net.get_weights())
    for have, want in zip(*weights, strict=True):
        np.testing.assert_array_equal(have, want)


def test_the_default_draws_a_new_seeded_order_every_epoch():
    from signtrain.training import batches

    rows = np.arange(40, dtype=np.float32).reshape(40, 1, 1)
    targets = np.zeros((40, 1), np.float32)
    epochs = []
    for _ in range(2):  # the same seed gives the same orders again
        keras.utils.set_random_seed(42)
        pipeline = batches.datasets(rows, targets, (rows[:2], targets[:2]), 16, seed=42, reshuffle=True)["x"]
        epochs.append([[int(v) for batch in pipeline for v in batch[0][:, 0, 0].numpy()] for _ in range(3)])
    assert epochs[0] == epochs[1]
    first, second, third = epochs[0]
    assert sorted(first) == sorted(second) == list(range(40))
    assert first != second and second != third

