"""Numbers no camera gives never become a model or a probability (issue 26 §2)."""

import numpy as np

from signtrain import cli, config
from signtrain.model import network as model_lib
from signtrain.export import convert as export


def test_predict_skips_a_take_of_huge_values_and_never_prints_nan(short_run, tmp_path, capsys):
    _, run_dir, _ = short_run
    takes = np.random.default_rng(0).uniform(0, 1, (2, config.SEQUENCE_LENGTH, config.NUM_FEATURES))
    takes[1, 3, 40] = 1e30  # finite, even in float32
    np.save(tmp_path / "takes.npy", takes)
    assert cli.main(["predict", "--model", run_dir, "--data", str(tmp_path / "takes.npy")]) == 0
    out = capsys.readouterr().out
    assert "takes.npy[1]: skipped, has a value of 1e+30, far beyond what MediaPipe gives" in out
    assert "takes.npy[0]: " in out and "nan" not in out.lower()


def test_a_model_of_nan_weights_is_called_damaged_not_converted(short_run, tmp_path):
    import pytest

    _, run_dir, _ = short_run
    net = model_lib.load_model(f"{run_dir}/{config.MODEL_FILE}")
    net.set_weights([np.full_like(weights, np.nan) for weights in net.get_weights()])
    X = np.zeros((2, config.SEQUENCE_LENGTH, config.NUM_FEATURES), np.float32)
    with pytest.raises(ValueError, match="gives no finite probability on the test sequences: the model is damaged"):
        export.export_and_check(net, str(tmp_path), ["onnx"], X)
    assert not (tmp_path / "action_model.onnx").exists()


def test_predict_with_a_model_of_nan_weights_shows_no_probability(short_run, tmp_path, capsys):
    import shutil

    _, run_dir, _ = short_run
    damaged = tmp_path / "run"
    shutil.copytree(run_dir, damaged)
    net = model_lib.load_model(str(damaged / config.MODEL_FILE))
    net.set_weights([np.full_like(weights, np.nan) for weights in net.get_weights()])
    net.save(str(damaged / config.MODEL_FILE))
    np.save(tmp_path / "take.npy", np.full((config.SEQUENCE_LENGTH, config.NUM_FEATURES), 0.5))
    assert cli.main(["predict", "--model", str(damaged), "--data", str(tmp_path / "take.npy")]) == 0
    out = capsys.readouterr().out
    assert "take.npy: skipped" in out and "the model is damaged" in out and "nan%" not in out


def test_the_front_ends_give_finite_outputs_for_every_finite_input():
    """The live app feeds whatever MediaPipe (or a bug) hands it: values up to float32's largest, on
    any subset of the 1662 positions, in frames with parts missing. The divisions of --normalize and
    --features relative (UnitNormalization) must never turn them into inf or NaN."""
    import pytest

    from signtrain.data import synth

    X, _ = synth.synth_arrays(["Hello", "Yes"], 2, seed=1)
    rng = np.random.default_rng(0)
    batch = X[np.arange(120) % len(X)].astype(np.float32)
    for take in batch:
        positions = rng.choice(config.NUM_FEATURES, rng.integers(1, config.NUM_FEATURES), replace=False)
        magnitude = np.minimum(10.0 ** rng.uniform(0, 38.5, len(positions)), np.finfo(np.float32).max)
        take[:, positions] = rng.choice([-1.0, 1.0], len(positions)) * magnitude
        take[rng.integers(0, config.SEQUENCE_LENGTH)] = 0  # a frame where MediaPipe saw nothing
    assert np.isfinite(batch).all() and np.abs(batch).max() > 1e38
    for kind in ({"features": "relative"}, {"normalize": True}):
        front_end = model_lib.build_model(2, **kind)
        assert np.isfinite(front_end.predict(batch, verbose=0)).all(), kind
