"""Round trips of every shipped format: ONNX, TFLite, SavedModel and the .h5 in Keras 2, each
against the Keras model on the same input; `signtrain export` and `signtrain predict`."""

import dataclasses
import functools
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from signtrain import cli, config
from signtrain.data import synth
from signtrain.export import convert as export, formats, h5compat, infer

FORMATS = ["onnx", "tflite", "savedmodel"]
# Float32 reorderings give ~1e-7 with Keras' moving averages and up to ~1.3e-5 with exact BatchNorm
# statistics (a channel of small variance scales the rounding up); a wrong gate order or weight
# gives ~1e-1. The exports themselves are checked at config.EXPORT_TOLERANCE (1e-4).
TOLERANCE = 5e-5

PREDICT = """
import sys
import numpy as np
import {module} as keras  # tf_keras: Keras 2; tensorflow.keras: that TensorFlow's own
model = keras.models.load_model(sys.argv[1])  # plain load_model, no custom objects
np.save(sys.argv[3], model.predict(np.load(sys.argv[2]), verbose=0))
print(getattr(keras, "__version__", None) or keras.version(), type(model).__name__, len(model.layers))
"""


def require_tf_keras():
    """tf_keras (Keras 2): `make setup` installs it; CI fails without it, elsewhere the test skips."""
    try:
        import tf_keras
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("tf_keras is missing: `make setup` installs it for the Keras 2 round trip")
        pytest.skip("tf_keras (Keras 2) not installed")
    return tf_keras


def predict_in(python, module, h5_path, X, tmp_path):
    """(predictions, Keras version) of the .h5 loaded by `module` under `python`, in a process of its own."""
    np.save(tmp_path / "x.npy", X)
    result = subprocess.run([python, "-c", PREDICT.format(module=module), h5_path, str(tmp_path / "x.npy"),
                             str(tmp_path / "y.npy")], capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 0, result.stderr[-3000:]
    return np.load(tmp_path / "y.npy"), result.stdout.split()[0]


def keras2_predict(h5_path, X, tmp_path):
    """Predictions of the .h5 loaded by Keras 2 (tf_keras), in a process of its own."""
    require_tf_keras()
    predictions, version = predict_in(sys.executable, "tf_keras", h5_path, X, tmp_path)
    assert version.startswith("2."), version  # really Keras 2
    return predictions


def keras3_predict(h5_path, X):
    import keras

    return keras.models.load_model(h5_path).predict(X, verbose=0)  # plain load_model, compiled too


@pytest.fixture(scope="module")
def exported_run(short_run, tmp_path_factory):
    """A copy of the short run, exported to every format through `signtrain export`."""
    _, run_dir, data_dir = short_run
    copy = str(tmp_path_factory.mktemp("exported") / "exp")
    shutil.copytree(run_dir, copy)
    shutil.rmtree(os.path.join(copy, config.SAVEDMODEL_DIR))  # written again by the export
    assert cli.main(["export", copy, "--format", ",".join(FORMATS)]) == 0
    X_test, metrics = export.read_test_sequences(copy)  # metrics.json as the export left it
    return copy, data_dir, metrics, X_test


def test_every_format_gives_the_keras_probabilities(exported_run):
    run_dir, _, metrics, X_test = exported_run
    reference = keras3_predict(os.path.join(run_dir, config.MODEL_FILE), X_test)
    assert reference.shape == (len(X_test), len(metrics.actions))
    for name in FORMATS:
        path = os.path.join(run_dir, formats.get(name).file)
        outputs = infer.load_predictor(path)(X_test)  # the format comes from the file name
        assert outputs.shape == reference.shape
        assert np.max(np.abs(outputs - reference)) < TOLERANCE, name
        assert (outputs.argmax(1) == reference.argmax(1)).all()
        record = metrics.exports[name]
        assert record["file"] == formats.get(name).file and record["max_abs_diff"] < TOLERANCE
        assert record["top1_agree"] == f"{len(X_test)}/{len(X_test)}" and record["converted"] is True


def test_onnx_takes_any_batch_size_and_tflite_uses_builtin_ops_only(exported_run):
    run_dir, _, _, X_test = exported_run
    import onnx

    graph = onnx.load(os.path.join(run_dir, formats.get("onnx").file)).graph
    assert graph.input[0].name == export.INPUT_NAME
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_value == 0  # symbolic: any batch
    assert "LSTM" in {node.op_type for node in graph.node}  # the fused operator, not a Loop
    onnx_predict = infer.load_predictor(os.path.join(run_dir, formats.get("onnx").file))
    for batch in (1, 5):
        assert onnx_predict(X_test[:batch]).shape[0] == batch
    interpreter = infer._tflite_interpreter(os.path.join(run_dir, formats.get("tflite").file))
    assert list(interpreter.get_input_details()[0]["shape"]) == [1, config.SEQUENCE_LENGTH, config.NUM_FEATURES]
    with open(os.path.join(run_dir, formats.get("tflite").file), "rb") as handle:
        assert b"Flex" not in handle.read()  # no Select TF ops: the plain interpreter runs it
    # TensorFlow's own (older) interpreter runs it too, with no delegate, as LiteRT does.
    import tensorflow as tf

    plain = tf.lite.Interpreter(model_path=os.path.join(run_dir, formats.get("tflite").file))
    plain.allocate_tensors()
    plain.set_tensor(plain.get_input_details()[0]["index"], X_test[:1])
    plain.invoke()
    litert = infer.load_predictor(os.path.join(run_dir, formats.get("tflite").file))(X_test[:1])
    assert np.max(np.abs(plain.get_tensor(plain.get_output_details()[0]["index"]) - litert)) < TOLERANCE


def test_h5_loads_in_keras2_and_keras3_with_the_same_predictions(exported_run, tmp_path):
    run_dir, _, metrics, X_test = exported_run
    h5_path = os.path.join(run_dir, config.MODEL_FILE)
    reference = keras3_predict(h5_path, X_test)
    assert np.max(np.abs(keras2_predict(h5_path, X_test, tmp_path) - reference)) < TOLERANCE
    assert metrics.h5_loads_in == ["keras3", "keras2"]


def test_export_keeps_what_is_there_and_refuses_bad_input(exported_run, tmp_path, capsys):
    run_dir, data_dir, _, _ = exported_run
    onnx_path = os.path.join(run_dir, formats.get("onnx").file)
    before = os.path.getmtime(onnx_path)
    assert cli.main(["export", run_dir, "--format", "onnx"]) == 0
    assert os.path.getmtime(onnx_path) == before and "kept, already there" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["export", run_dir, "--format", "onx"])
    assert "unknown export format onx: choose from savedmodel, onnx, tflite" in capsys.readouterr().err
    assert cli.main(["export", run_dir, "--format", "onnx", "--data", str(tmp_path / "gone")]) == 2
    assert "Pass the data folder the run trained on with --data DIR" in capsys.readouterr().err
    assert cli.main(["export", str(tmp_path), "--format", "onnx"]) == 2
    assert "signtrain export takes a finished run folder" in capsys.readouterr().err


def test_an_export_that_disagrees_is_removed(short_run, tmp_path, monkeypatch):
    _, run_dir, _ = short_run
    from signtrain.model import network as model_lib

    net = model_lib.load_model(os.path.join(run_dir, config.MODEL_FILE))
    X = np.random.default_rng(0).random((3, config.SEQUENCE_LENGTH, config.NUM_FEATURES), dtype=np.float32)
    wrong = net.predict(X, verbose=0)[:, ::-1]  # a reference the export cannot match
    with pytest.raises(ValueError, match="differs from the Keras model.*removed"):
        export.export_and_check(net, str(tmp_path), ["onnx"], X, reference=wrong)
    assert not os.listdir(tmp_path)  # neither the export nor a partial file is left


def test_predict_prints_the_top_signs_in_every_format(exported_run, capsys):
    run_dir, data_dir, metrics, X_test = exported_run
    action, name = metrics.test_sequences[0]
    sequence_dir = os.path.join(data_dir, action, name)
    expected = metrics.actions[int(keras3_predict(os.path.join(run_dir, config.MODEL_FILE), X_test[:1]).argmax())]
    for model_format in ["keras"] + FORMATS:
        assert cli.main(["predict", "--model", run_dir, "--format", model_format, "--data", sequence_dir]) == 0
        lines = capsys.readouterr().out.strip().splitlines()
        assert lines[0].endswith(f"({model_format}), 1 sequence:")
        top = lines[1].split(": ", 1)[1].split(", ")
        assert len(top) == 3 and top[0].startswith(expected + " ")
        probabilities = [float(item.rsplit(" ", 1)[1].rstrip("%")) for item in top]
        assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 100.05
    # A whole sign's folder through a model file; the broken sequence is reported, not fatal.
    assert cli.main(["predict", "--model", os.path.join(run_dir, formats.get("onnx").file), "--data",
                     os.path.join(data_dir, "Stop"), "--top", "1"]) == 0
    out = capsys.readouterr().out
    assert "4: skipped, " in out and "frame 17.npy" in out
    assert len([line for line in out.splitlines() if line.count(": ") == 1 and "%" in line]) == 9


def test_predict_reads_npy_files_and_explains_mistakes(exported_run, tmp_path, capsys):
    run_dir, _, _, X_test = exported_run
    np.save(tmp_path / "two.npy", X_test[:2])
    assert cli.main(["predict", "--model", run_dir, "--format", "tflite", "--data", str(tmp_path / "two.npy")]) == 0
    assert "two.npy[1]: " in capsys.readouterr().out
    np.save(tmp_path / "frame.npy", X_test[0, 0])
    assert cli.main(["predict", "--model", run_dir, "--data", str(tmp_path / "frame.npy")]) == 2
    assert "expected (30, values per frame) for one sequence, e.g. (30, 1662)" in capsys.readouterr().err
    (tmp_path / "model.pt").write_bytes(b"")
    assert cli.main(["predict", "--model", str(tmp_path / "model.pt"), "--data", str(tmp_path / "two.npy")]) == 2
    assert "unknown model file type '.pt'" in capsys.readouterr().err
    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copy(os.path.join(run_dir, formats.get("onnx").file), lone)
    assert cli.main(["predict", "--model", str(lone / formats.get("onnx").file), "--data", str(tmp_path / "two.npy")]) == 2
    assert "actions.npy not found" in capsys.readouterr().err


@pytest.mark.slow
def test_train_normalize_exports_and_loads_in_keras2(tmp_path):
    """--normalize puts standard layers in front (a functional model): every format and Keras 2 agree."""
    data_dir = synth.write_mp_data(str(tmp_path / "MP_Data"), actions=["Hello", "Yes", "No"], sequences=8, seed=3)
    assert cli.main(["train", "--data", data_dir, "--epochs", "2", "--normalize", "--export", "onnx,tflite",
                     "--out", str(tmp_path / "run")]) == 0
    run_dir = str(tmp_path / "run")
    X, metrics = export.read_test_sequences(run_dir)
    assert set(metrics.exports) == {"onnx", "tflite"} and metrics.h5_loads_in == ["keras3", "keras2"]
    assert len(X) == metrics.n_test
    reference = keras3_predict(os.path.join(run_dir, config.MODEL_FILE), X)
    for name in ("onnx", "tflite"):
        outputs = infer.load_predictor(os.path.join(run_dir, formats.get(name).file))(X)
        assert np.max(np.abs(outputs - reference)) < TOLERANCE, name
    keras2 = keras2_predict(os.path.join(run_dir, config.MODEL_FILE), X, tmp_path)
    assert np.max(np.abs(keras2 - reference)) < TOLERANCE


def _model_and_builder(**kind):
    from signtrain.model import network as model_lib

    return model_lib.build_model(4, **kind), functools.partial(model_lib.build_model, 4, **kind)


@pytest.mark.parametrize("kind", [{}, {"normalize": True}, {"features": "relative"}])
def test_keras2_writes_the_h5_and_keras3_reads_it(kind, tmp_path):
    """tf_keras writes the file (its own h5 writer), minus the arguments a loader lacks; both
    loaders read it with the trained model's predictions (save_h5 checked that before keeping it)."""
    import h5py

    require_tf_keras()
    net, build = _model_and_builder(**kind)
    X = np.random.default_rng(3).random((2, config.SEQUENCE_LENGTH, config.NUM_FEATURES), dtype=np.float32)
    path = str(tmp_path / "model.h5")
    assert export.save_h5(net, path, build, X) is None
    with h5py.File(path) as handle:
        assert str(handle.attrs["keras_version"]).startswith("2.")  # Keras 2 wrote it
        text = handle.attrs["model_config"]
    assert "batch_input_shape" in text
    assert not [key for key in ('"time_major"', '"groups"', '"optional"') if key in text]
    assert not [name for name in os.listdir(tmp_path) if ".partial" in name]
    expected = np.asarray(net(X, training=False))
    assert np.max(np.abs(keras3_predict(path, X) - expected)) < TOLERANCE
    assert np.max(np.abs(keras2_predict(path, X, tmp_path) - expected)) < TOLERANCE


def test_colabs_keras_loads_the_h5_with_the_same_predictions(short_run, tmp_path):
    """The live app on Colab's stack (TensorFlow 2.19, Keras 3.10) reads the Keras-2-written file."""
    from conftest import colab_python

    _, run_dir, _ = short_run
    h5_path = os.path.join(run_dir, config.MODEL_FILE)
    X = np.random.default_rng(4).random((2, config.SEQUENCE_LENGTH, config.NUM_FEATURES), dtype=np.float32)
    predictions, version = predict_in(colab_python(), "tensorflow.keras", h5_path, X, tmp_path)
    assert version == "3.10.0"
    assert np.max(np.abs(predictions - keras3_predict(h5_path, X))) < TOLERANCE


def test_an_argument_keras3_lacks_is_refused_not_dropped(tmp_path):
    tf_keras = require_tf_keras()
    net = tf_keras.Sequential([tf_keras.Input((config.SEQUENCE_LENGTH, 4)), tf_keras.layers.LSTM(3, time_major=True)])
    net.save(str(tmp_path / "keras2.h5"))
    with pytest.raises(h5compat.NotPortable, match="sets time_major, which not every Keras has"):
        h5compat.readable_everywhere(str(tmp_path / "keras2.h5"))


def _keeps_keras3_file(net, path, build, X):
    """save_h5 gave a reason; the file is Keras 3's own, with the model's predictions."""
    import h5py
    import keras

    reason = export.save_h5(net, path, build, X)
    with h5py.File(path) as handle:
        assert str(handle.attrs["keras_version"]).startswith("3.")
    assert np.allclose(keras.models.load_model(path, compile=False).predict(X, verbose=0),
                       net.predict(X, verbose=0), atol=1e-6)
    assert not [name for name in os.listdir(os.path.dirname(path)) if ".partial" in name]
    return reason


def test_without_keras2_the_file_is_keras3_own_and_says_how_to_get_both(tmp_path, monkeypatch):
    net, build = _model_and_builder()
    X = np.random.default_rng(1).random((2, config.SEQUENCE_LENGTH, config.NUM_FEATURES), dtype=np.float32)
    monkeypatch.setitem(sys.modules, "tf_keras", None)  # import tf_keras raises ImportError
    reason = _keeps_keras3_file(net, str(tmp_path / "model.h5"), build, X)
    assert "tf_keras (Keras 2) is not installed" in reason and "pip install --no-deps" in reason


def test_a_model_keras2_cannot_match_keeps_the_keras3_file(tmp_path, monkeypatch):
    """Another model from the builder, or a loader that predicts otherwise: Keras 3's own file."""
    require_tf_keras()
    net, build = _model_and_builder(normalize=True)
    _, other = _model_and_builder()
    X = np.random.default_rng(2).random((2, config.SEQUENCE_LENGTH, config.NUM_FEATURES), dtype=np.float32)
    assert "other layers" in _keeps_keras3_file(net, str(tmp_path / "a.h5"), other, X)
    monkeypatch.setattr(h5compat, "TOLERANCE", -1.0)  # every difference is too big
    assert "predicts" in _keeps_keras3_file(net, str(tmp_path / "b.h5"), build, X)
    assert "builder" in _keeps_keras3_file(net, str(tmp_path / "c.h5"), None, X)


def test_an_export_with_nan_outputs_is_refused(short_run, tmp_path, monkeypatch):
    _, run_dir, _ = short_run
    from signtrain.model import network as model_lib

    net = model_lib.load_model(os.path.join(run_dir, config.MODEL_FILE))
    X = np.random.default_rng(0).random((3, config.SEQUENCE_LENGTH, config.NUM_FEATURES), dtype=np.float32)
    monkeypatch.setattr(infer, "load_predictor", lambda path, name: lambda X: np.full((len(X), 10), np.nan))
    with pytest.raises(ValueError, match="outputs not finite"):
        export.export_and_check(net, str(tmp_path), ["onnx"], X)
    assert not os.listdir(tmp_path)


def test_near_ties_do_not_count_as_disagreements():
    reference = np.array([[0.5, 0.5 - 1e-6, 0.0], [0.7, 0.2, 0.1], [0.1, 0.8, 0.1]])
    outputs = np.array([[0.5 - 1e-6, 0.5, 0.0], [0.7, 0.2, 0.1], [0.8, 0.1, 0.1]])
    assert export._disagreements(outputs, reference, 1e-4) == 1  # the last row only; the first is a tie


def test_a_failed_export_keeps_the_run_and_says_how_to_retry(tmp_path, monkeypatch, capsys):
    data_dir = synth.write_mp_data(str(tmp_path / "MP_Data"), actions=["Hello", "Yes"], sequences=6, seed=2)

    def broken(model, path):
        with open(path, "wb") as handle:
            handle.write(b"half")
        raise RuntimeError("converter crashed")

    table = formats.export_formats()
    monkeypatch.setattr(formats, "export_formats", lambda: tuple(
        dataclasses.replace(entry, export=broken) if entry.name == "tflite" else entry for entry in table))
    code = cli.main(["train", "--data", data_dir, "--epochs", "1", "--export", "tflite,onnx",
                     "--out", str(tmp_path / "run")])
    assert code == 2
    error = capsys.readouterr().err
    assert "the tflite export of" in error and "converter crashed" in error
    assert f"retry with: signtrain export {tmp_path / 'run'} --format tflite" in error
    with open(tmp_path / "run" / config.METRICS_FILE) as handle:
        metrics = json.load(handle)
    assert "converter crashed" in metrics["exports"]["tflite"]["error"]
    assert metrics["exports"]["onnx"]["top1_agree"] == f"{metrics['n_test']}/{metrics['n_test']}"
    assert not (tmp_path / "run" / formats.get("tflite").file).exists()  # the half-written file is gone
    assert (tmp_path / "run" / config.MODEL_FILE).exists() and (tmp_path / "run" / formats.get("onnx").file).exists()


def test_predict_skips_sequences_of_another_layout(exported_run, tmp_path, capsys):
    run_dir, _, _, X_test = exported_run
    np.save(tmp_path / "pose_and_hands.npy", X_test[:1, :, :258])
    code = cli.main(["predict", "--model", run_dir, "--format", "onnx", "--data", str(tmp_path / "pose_and_hands.npy")])
    assert code == 2
    captured = capsys.readouterr()
    assert "pose_and_hands.npy: skipped, its frames have 258 values" in captured.out and "takes 1662" in captured.out
    assert "that " in captured.err and "can take" in captured.err
    nan = X_test[:2].copy()
    nan[1, 3, 5] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    assert cli.main(["predict", "--model", run_dir, "--format", "tflite", "--data", str(tmp_path / "nan.npy")]) == 0
    out = capsys.readouterr().out
    assert "nan.npy[1]: skipped, contains NaN" in out and "nan.npy[0]: " in out
    assert cli.main(["predict", "--model", str(tmp_path / "runs" / "exp9"), "--data", str(tmp_path / "nan.npy")]) == 2
    assert "exp9 not found: --model takes a run folder" in capsys.readouterr().err
