"""--ensemble N: the members' softmax outputs averaged in one saved model that loads with plain
load_model in Keras 3 and tf_keras and converts to ONNX and TFLite with the same outputs."""

import glob
import json
import os

import numpy as np
import pytest

from signtrain import cli
from signtrain.data import synth
from signtrain.model import ensemble, network as model_lib
from signtrain.export import h5compat


def test_combine_averages_the_members_softmax_outputs(tmp_path):
    from tensorflow import keras

    def build(**options):
        return model_lib.build_model(3, 30, 1662, False, "relative", **options)

    members = []
    for seed in (1, 2, 3):
        keras.utils.set_random_seed(seed)
        members.append(build())
    X = np.random.default_rng(0).uniform(0, 1, (6, 30, 1662)).astype(np.float32)
    outputs = [np.asarray(member(X, training=False)) for member in members]
    assert np.abs(outputs[0] - outputs[1]).max() > 1e-3  # members that differ: the mean means something
    combined = ensemble.combine(members, build)
    np.testing.assert_allclose(np.asarray(combined(X, training=False)), np.mean(outputs, axis=0), atol=1e-6)
    # The file both Keras load (h5compat checks both predict what `combined` does, to 1e-5).
    path = str(tmp_path / "ensemble.h5")
    h5compat.write_portable(combined, lambda keras=None: build(keras=keras, members=3), path, X)
    reloaded = h5compat.keras2().models.load_model(path, compile=False)
    np.testing.assert_allclose(np.asarray(reloaded(X, training=False)), np.mean(outputs, axis=0), atol=1e-5)


def test_an_ensemble_run_ships_the_mean_of_its_members_in_every_format(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    data_dir = synth.write_mp_data(str(tmp_path / "MP_Data"), actions=["Hello", "Yes", "No"], sequences=8, seed=4)
    out = tmp_path / "run"
    assert cli.main(["train", "--data", data_dir, "--ensemble", "2", "--epochs", "2", "--keep", "last",
                     "--export", "onnx,tflite", "--out", str(out)]) == 0
    metrics = json.load(open(out / "metrics.json"))
    assert metrics["ensemble"]["members"] == 2 and metrics["ensemble"]["seeds"] == [42, 43]
    assert len(metrics["ensemble"]["member_test_accuracy"]) == 2 and metrics["ensemble_size"] == 2
    assert metrics["h5_loads_in"] == ["keras3", "keras2"]
    for name in ("onnx", "tflite"):  # checked against the Keras ensemble on the test sequences
        assert metrics["exports"][name]["max_abs_diff"] < 1e-5, metrics["exports"][name]
    # Each member's own kept weights are in members/seed<S>/best_model.h5 (--keep last: the last epoch).
    member_files = sorted(glob.glob(str(out / "members" / "seed*" / "best_model.h5")))
    assert [os.path.basename(os.path.dirname(path)) for path in member_files] == ["seed42", "seed43"]
    X = np.random.default_rng(1).uniform(0, 1, (4, 30, 1662)).astype(np.float32)
    mean = np.mean([model_lib.load_model(path).predict(X, verbose=0) for path in member_files], axis=0)
    from tensorflow import keras

    for loader in (keras.models.load_model, h5compat.keras2().models.load_model):
        shipped = loader(str(out / "action_model.h5"), compile=False)
        np.testing.assert_allclose(np.asarray(shipped(X, training=False)), mean, atol=1e-5)
    # Not resumable (members train one after another): a run without its metrics.json is refused, said so.
    os.remove(out / "metrics.json")
    assert cli.main(["train", "--resume", str(out)]) == 2
    assert "is an --ensemble run" in capsys.readouterr().err


def test_ensemble_with_a_strategy_is_refused_naming_both_flags(tmp_path, capsys):
    data_dir = synth.write_mp_data(str(tmp_path / "MP_Data"), actions=["Hello", "Yes"], sequences=4, seed=4)
    assert cli.main(["train", "--data", data_dir, "--ensemble", "2", "--strategy", "mirrored"]) == 2
    assert "drop --strategy mirrored or --ensemble" in capsys.readouterr().err


def test_an_interrupted_ensemble_is_removed_and_says_it_cannot_be_resumed(tmp_path, capsys, monkeypatch):
    from signtrain.training import train as train_lib

    data_dir = synth.write_mp_data(str(tmp_path / "MP_Data"), actions=["Hello", "Yes"], sequences=8, seed=4)
    fits, real_fit = [], train_lib.fit_run

    def fit_then_ctrl_c(prepared, *args):
        fits.append(prepared.run_dir)
        if len(fits) == 2:  # Ctrl-C in the second member, after the first one trained
            raise KeyboardInterrupt
        return real_fit(prepared, *args)

    monkeypatch.setattr(train_lib, "fit_run", fit_then_ctrl_c)
    out = tmp_path / "run"
    assert cli.main(["train", "--data", data_dir, "--ensemble", "2", "--epochs", "1", "--out", str(out)]) == 130
    assert "an --ensemble run cannot be resumed" in capsys.readouterr().err
    assert fits[0].endswith(os.path.join("members", "seed42")) and not out.exists()
