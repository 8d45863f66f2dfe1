"""--features relative: body, hand shapes, lips and motion, computed by standard layers inside the model."""

import json
import os

import numpy as np
import pytest
import yaml

from conftest import realdata_file
from signtrain import cli, config
from signtrain.data import synth
from signtrain.model import features, network as model_lib, preprocess
from signtrain.export import formats


@pytest.fixture(scope="module")
def front_ends():
    from tensorflow import keras

    nets = {}
    for mirror in (False, True):
        inputs = keras.Input(shape=(30, config.NUM_FEATURES))
        nets[mirror] = keras.Model(inputs, features.relative_keypoints(inputs, mirror=mirror))
        preprocess.set_fixed_weights(nets[mirror])
    return nets


@pytest.fixture(scope="module")
def real_frames():
    """Real sequences by two people: hands missing in many frames, some left-handed takes."""
    rows = []
    for name in ("akadeepanshu_6signs.npz", "ismokedata_6signs.npz"):
        recording = np.load(realdata_file(name))
        rows.append(recording["X"][::9][:20])
    return np.concatenate(rows).astype(np.float32)


def _frame():
    """One frame built by hand: shoulders 0.2 apart, a right hand of size 0.1 at known places."""
    frame = np.zeros(config.NUM_FEATURES)
    pose = lambda landmark: landmark * 4  # noqa: E731
    right = lambda landmark: config.block_slice("right_hand").start + 3 * landmark  # noqa: E731
    frame[pose(11):pose(11) + 2] = 0.6, 0.5  # left shoulder
    frame[pose(12):pose(12) + 2] = 0.4, 0.5  # right shoulder: midpoint (0.5, 0.5), width 0.2
    frame[pose(0):pose(0) + 2] = 0.5, 0.3  # nose
    frame[right(0):right(0) + 3] = 0.7, 0.6, 0.0  # wrist
    frame[right(9):right(9) + 3] = 0.7, 0.5, -0.1  # base of the middle finger: hand size 0.1
    frame[right(8):right(8) + 3] = 0.75, 0.45, -0.2  # index finger tip
    return frame


def _index(group, part, landmark):
    return 2 * features.points().index((group, part, landmark))


def test_the_formulas_on_a_frame_built_by_hand():
    out = features.relative_numpy(_frame()[None, None], mirror=False)[0, 0]
    assert out.shape == (features.OUTPUT_SIZE,) == (372,)
    np.testing.assert_allclose(out[_index("body", "pose", 0):][:2], [0.0, -1.0])  # nose: (0, -0.2) / 0.2
    np.testing.assert_allclose(out[_index("body", "right_hand", 8):][:2], [1.25, -0.25])  # (0.25, -0.05) / 0.2
    np.testing.assert_allclose(out[_index("shape", "right_hand", 8):][:2], [0.5, -1.5])  # (0.05, -0.15) / 0.1
    np.testing.assert_allclose(out[_index("shape", "right_hand", 9):][:2], [0.0, -1.0])
    # The left hand and the face were not seen: their values are zero, not "minus the shoulders".
    assert not np.any(out[_index("body", "left_hand", 0):][:42]) and not np.any(out[_index("body", "face", 61):][:8])
    assert not np.any(out[features.STATIC_SIZE:])  # one frame: no motion


def test_layers_compute_the_reference_on_real_frames(front_ends, real_frames):
    left_missing = np.all(real_frames[..., config.block_slice("left_hand")] == 0, axis=-1)
    right_missing = np.all(real_frames[..., config.block_slice("right_hand")] == 0, axis=-1)
    assert left_missing.mean() > 0.2 and right_missing.mean() > 0.2 and np.any(left_missing & right_missing)
    flipped = left_missing.sum(axis=1) < right_missing.sum(axis=1)
    assert 0 < flipped.sum() < len(flipped)  # both kinds of sequence are in the sample
    for mirror, net in front_ends.items():
        expected = features.relative_numpy(real_frames, mirror=mirror)
        np.testing.assert_allclose(net.predict(real_frames, verbose=0), expected, atol=2e-5, rtol=1e-5)


def test_where_and_how_big_the_signer_is_no_longer_matters(real_frames):
    sequence = real_frames[:4].astype(np.float64)
    moved = sequence.copy()
    for start, stop, width in ((0, config.POSE_SIZE, 4), (config.POSE_SIZE, config.NUM_FEATURES, 3)):
        for axis, shift in ((0, 0.13), (1, -0.07)):
            columns = np.arange(start + axis, stop, width)
            seen = moved[..., columns] != 0
            moved[..., columns] = np.where(seen, 0.5 + 1.4 * (moved[..., columns] - 0.5) + shift, 0)
    np.testing.assert_allclose(features.relative_numpy(moved), features.relative_numpy(sequence), atol=1e-9)


def test_a_mirrored_take_gives_the_same_features(real_frames):
    """The more active hand is always on one side: --augment's mirrored copies stay correct."""
    face_order = preprocess.face_mirror_order(real_frames)  # as --augment pairs the face mesh's landmarks
    assert face_order[61] == 291 and face_order[13] == 13  # the mouth corners swap, the lips' middle stays
    for sequence in real_frames[:12].astype(np.float64):
        left = np.any(sequence[:, config.block_slice("left_hand")] != 0, axis=-1).sum()
        right = np.any(sequence[:, config.block_slice("right_hand")] != 0, axis=-1).sum()
        if left == right:
            continue  # a tie keeps the sequence as it is, mirrored or not
        np.testing.assert_allclose(features.relative_numpy(preprocess._mirror(sequence, face_order)),
                                   features.relative_numpy(sequence), atol=1e-9)


def test_the_spec_layers_follow_unchanged_and_raw_stays_the_default():
    plain = model_lib.build_model(10)
    relative = model_lib.build_model(10, features="relative")
    strip = lambda layer: {k: v for k, v in layer.get_config().items() if k != "name"}  # noqa: E731
    assert [strip(layer) for layer in relative.layers[-len(plain.layers) + 1:]] == [
        strip(layer) for layer in plain.layers[1:]]  # everything after the first LSTM
    assert relative.layers[-len(plain.layers)].input.shape[-1] == features.OUTPUT_SIZE
    front = sum(int(np.prod(w.shape)) for layer in relative.layers[:-len(plain.layers)] for w in layer.weights)
    assert all(not layer.trainable for layer in relative.layers[:-len(plain.layers)] if layer.weights) and front
    assert type(model_lib.build_model(4)).__name__ == "Sequential"
    assert cli.build_parser().parse_args(["train", "--data", "x"]).features == "raw"
    with pytest.raises(ValueError, match="--features relative needs the 1662-value layout"):
        model_lib.build_model(4, num_features=258, features="relative")
    with pytest.raises(ValueError, match="two front-ends"):
        model_lib.build_model(4, normalize=True, features="relative")


@pytest.mark.slow
def test_a_relative_augmented_run_ships_a_model_for_raw_frames_in_every_format(tmp_path):
    from test_export import TOLERANCE, keras2_predict, keras3_predict

    from signtrain.export import convert as export, infer

    data_dir = synth.write_mp_data(str(tmp_path / "MP_Data"), actions=["Hello", "Yes", "No"], sequences=10, seed=5)
    run_dir = str(tmp_path / "run")
    assert cli.main(["train", "--data", data_dir, "--epochs", "2", "--features", "relative", "--augment",
                     "--export", "onnx,tflite", "--out", run_dir]) == 0
    assert yaml.safe_load(open(os.path.join(run_dir, "args.yaml")))["features"] == "relative"
    metrics = json.load(open(os.path.join(run_dir, "metrics.json")))
    assert metrics["features"] == "relative" and metrics["h5_loads_in"] == ["keras3", "keras2"]
    X, _ = export.read_test_sequences(run_dir)
    reference = keras3_predict(os.path.join(run_dir, config.MODEL_FILE), X)  # plain load_model, raw frames
    for name in ("onnx", "tflite"):
        outputs = infer.load_predictor(os.path.join(run_dir, formats.get(name).file))(X)
        assert np.max(np.abs(outputs - reference)) < TOLERANCE, name
    assert np.max(np.abs(keras2_predict(os.path.join(run_dir, config.MODEL_FILE), X, tmp_path) - reference)) < TOLERANCE
