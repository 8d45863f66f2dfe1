"""--normalize: shoulder-relative keypoints computed by standard layers inside the saved model."""

import json
import os

import numpy as np
import pytest
import yaml

from signtrain import cli, config
from signtrain.data import synth
from signtrain.model import network as model_lib, preprocess


@pytest.fixture(scope="module")
def normalizer():
    from tensorflow import keras

    inputs = keras.Input(shape=(30, 1662))
    net = keras.Model(inputs, preprocess.normalize_keypoints(inputs))
    preprocess.set_fixed_weights(net)
    return net


@pytest.fixture(scope="module")
def frames():
    X, _ = synth.synth_arrays(sequences=2, seed=6)
    return X.astype(np.float32)


def test_layers_compute_the_reference(normalizer, frames):
    expected = preprocess.normalize_numpy(frames)
    np.testing.assert_allclose(normalizer.predict(frames, verbose=0), expected, atol=1e-4)
    pose = expected[..., :132].reshape(*expected.shape[:2], 33, 4)
    shoulder_width = np.linalg.norm(pose[..., 11, :2] - pose[..., 12, :2], axis=-1)
    np.testing.assert_allclose(shoulder_width, 1.0, atol=1e-6)  # distances in shoulder widths
    np.testing.assert_allclose(pose[..., 11, :2] + pose[..., 12, :2], 0.0, atol=1e-6)  # origin between them
    np.testing.assert_allclose(pose[..., 3], frames[..., 3:132:4])  # visibility untouched


def test_position_and_size_of_the_signer_no_longer_matter(normalizer, frames):
    moved = frames.copy()
    coordinates = np.zeros(1662, bool)
    for _, start, stop in config.BLOCKS:
        step = 4 if stop - start == 132 else 3
        coordinates[start:stop:step] = coordinates[start + 1 : stop : step] = True
    seen = moved != 0
    # The same signing, 30% farther away and moved left and down: x, y scaled and shifted, z scaled.
    moved[..., coordinates] = np.where(seen[..., coordinates], 0.7 * moved[..., coordinates] + 0.1, 0)
    z = np.zeros(1662, bool)
    z[np.array(sorted(set(range(2, 132, 4)) | set(range(134, 1662, 3))))] = True
    moved[..., z] = 0.7 * moved[..., z]
    np.testing.assert_allclose(normalizer.predict(moved, verbose=0), normalizer.predict(frames, verbose=0), atol=1e-4)


def test_unseen_parts_stay_zero(normalizer, frames):
    out = normalizer.predict(frames, verbose=0)
    for _, start, stop in config.BLOCKS:
        unseen = np.all(frames[..., start:stop] == 0, axis=-1)
        assert np.all(out[..., start:stop][unseen] == 0)
    assert np.any(np.all(frames[..., config.block_slice("left_hand")] == 0, axis=-1))  # the case occurs


def test_the_spec_layers_follow_unchanged():
    plain = model_lib.build_model(10)
    normalized = model_lib.build_model(10, normalize=True)
    spec_layers = normalized.layers[-len(plain.layers):]
    strip = lambda layer: {k: v for k, v in layer.get_config().items() if k != "name"}  # noqa: E731
    assert [strip(layer) for layer in spec_layers] == [strip(layer) for layer in plain.layers]
    trainable = sum(int(np.prod(w.shape)) for w in normalized.trainable_weights)
    assert trainable == plain.count_params() - 2 * (64 + 128 + 64)  # BatchNorm moving stats aside
    with pytest.raises(ValueError, match="needs the 1662-value layout"):
        model_lib.build_model(4, num_features=258, normalize=True)


def test_a_normalized_augmented_run_ships_a_model_that_takes_raw_frames(tmp_path, capsys):
    from tensorflow import keras

    data_dir = synth.write_mp_data(str(tmp_path / "MP_Data"), actions=["Hello", "Yes", "Please"], sequences=10,
                                   seed=12)
    assert cli.main(["train", "--data", data_dir, "--epochs", "2", "--normalize", "--augment"]) == 0
    run_dir = os.path.join("runs", "train", "exp")
    args = yaml.safe_load(open(os.path.join(run_dir, "args.yaml")))
    assert args["normalize"] is True and args["augment"] is True
    metrics = json.load(open(os.path.join(run_dir, "metrics.json")))
    assert metrics["reload_max_abs_diff"] < 1e-5
    shipped = keras.models.load_model(os.path.join(run_dir, "action_model.h5"))  # no custom objects
    raw = synth.synth_arrays(["Hello", "Yes", "Please"], sequences=1, seed=13)[0].astype(np.float32)
    features = keras.Model(shipped.inputs, shipped.get_layer("missing_parts_stay_zero").output)
    np.testing.assert_allclose(features.predict(raw, verbose=0), preprocess.normalize_numpy(raw), atol=1e-4)
    assert shipped.predict(raw, verbose=0).shape == (3, 3)


def test_augment_mirrors_moves_and_retimes_without_inventing_parts(frames):
    from signtrain.model.preprocess import _mirror, _move, augment

    sequence = frames[0].astype(np.float64)
    mirrored = _mirror(sequence)
    np.testing.assert_allclose(_mirror(mirrored), sequence, atol=1e-12)  # a mirror twice is the original
    np.testing.assert_array_equal(mirrored[:, config.block_slice("left_hand")] != 0,
                                  sequence[:, config.block_slice("right_hand")] != 0)  # hands swapped
    # The person's left shoulder is again on the image's right after mirroring (pose pairs swapped).
    assert np.all(mirrored[:, 44] > mirrored[:, 48]) and np.all(sequence[:, 44] > sequence[:, 48])
    moved = _move(sequence, np.random.default_rng(0))
    assert np.array_equal(moved == 0, sequence == 0)  # unseen stays unseen, nothing else becomes 0
    np.testing.assert_allclose(preprocess.normalize_numpy(moved)[..., 3::4][:, :33],
                               preprocess.normalize_numpy(sequence)[..., 3::4][:, :33])  # visibility kept
    X, y = frames[:4], np.arange(4)
    X_aug, y_aug = augment(X, y, np.random.default_rng(1))
    assert X_aug.shape == (12, 30, 1662) and y_aug.tolist() == [0, 1, 2, 3] * 3
    np.testing.assert_array_equal(X_aug[:4], X)  # the originals come first, unchanged
    assert not np.allclose(X_aug[4:8], X)


def test_face_mirror_pairs_are_found_from_a_symmetric_mesh():
    rng = np.random.default_rng(5)
    half = rng.uniform([0.01, -0.1], [0.08, 0.1], (config.FACE_LANDMARKS // 2, 2))
    template = np.concatenate([half, half * [-1, 1]])
    shuffled = rng.permutation(config.FACE_LANDMARKS)  # partners at unrelated indices, as in the real mesh
    template = template[shuffled]
    partner = np.argsort(shuffled)[(shuffled + config.FACE_LANDMARKS // 2) % config.FACE_LANDMARKS]
    frames = np.zeros((40, config.NUM_FEATURES))
    for frame in frames:  # the head moves and the landmarks jitter a little from frame to frame
        points = template + rng.uniform(0.3, 0.6, 2) + rng.normal(0, 0.0005, template.shape)
        frame[config.block_slice("face")] = np.concatenate([points, np.zeros((len(points), 1))], axis=1).ravel()
    order = preprocess.face_mirror_order(frames[None])
    np.testing.assert_array_equal(order, partner)
    np.testing.assert_array_equal(order[order], np.arange(config.FACE_LANDMARKS))  # pairs: an involution
    sequence = frames[:30]
    np.testing.assert_allclose(preprocess._mirror(preprocess._mirror(sequence, order), order), sequence, atol=1e-12)
    assert np.array_equal(preprocess.face_mirror_order(np.zeros((1, 30, config.NUM_FEATURES))),
                          np.arange(config.FACE_LANDMARKS))  # no face seen: nothing to swap


def test_face_mirror_pairs_on_real_mediapipe_meshes():
    """MediaPipe's mesh: 33/263 are the outer eye corners, 61/291 the mouth corners, 1 the nose tip."""
    from conftest import realdata_file

    recording = np.load(realdata_file("lujamanandhar_10signs.npz"))["X"][:60]
    order = preprocess.face_mirror_order(recording)
    assert (order[33], order[263], order[61], order[291], order[1]) == (263, 33, 291, 61, 1)
    assert np.mean(order[order] == np.arange(config.FACE_LANDMARKS)) > 0.95


def test_augmented_training_never_sees_the_validation_rows(frames):
    from signtrain.training.fitting import plan_fit
    from signtrain.training.train import TrainSettings

    from signtrain.data.dataset import Split

    y = np.eye(2)[np.arange(len(frames)) % 2]
    split_of_all = Split.of(np.arange(len(frames)), [])
    plain = plan_fit(TrainSettings(data="x", fast=False, reshuffle=False), frames, y, split_of_all, seed=0)
    assert plain.path == "spec" and plain.inputs["validation_split"] == 0.15
    np.testing.assert_array_equal(plain.inputs["x"], frames)
    arguments = plan_fit(TrainSettings(data="x", augment=True, fast=False, reshuffle=False), frames, y, split_of_all,
                         seed=0).inputs
    X_val, _ = arguments["validation_data"]
    split = int(len(frames) * 0.85)
    np.testing.assert_array_equal(X_val, frames[split:])  # the rows validation_split=0.15 would take
    assert len(arguments["x"]) == 3 * split
    for row in X_val:
        assert not any(np.array_equal(row, candidate) for candidate in arguments["x"])
