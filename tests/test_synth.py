import os

import numpy as np
import pytest

from signtrain import config
from signtrain.data import dataset as data, synth


@pytest.fixture(scope="module")
def arrays():
    return synth.synth_arrays(sequences=4, seed=3)


def blocks(X):
    return {name: X[..., start:stop] for name, start, stop in config.BLOCKS}


def test_shapes_labels_and_determinism(arrays):
    X, y = arrays
    assert X.shape == (40, 30, 1662) and X.dtype == np.float64
    assert y.tolist() == [label for label in range(10) for _ in range(4)]
    X_again, _ = synth.synth_arrays(sequences=4, seed=3)
    np.testing.assert_array_equal(X, X_again)
    X_other, _ = synth.synth_arrays(sequences=4, seed=4)
    assert not np.allclose(X, X_other)


def test_values_look_like_mediapipe(arrays):
    X, _ = arrays
    parts = blocks(X)
    pose = parts["pose"].reshape(*X.shape[:2], 33, 4)
    assert np.all((pose[..., 3] >= 0) & (pose[..., 3] <= 1))  # visibility is a probability
    upper_body = pose[..., :13, :2]
    assert upper_body.min() > 0 and upper_body.max() < 1  # head and shoulders in the image
    # The person's left shoulder is on the image's right (not a mirrored camera).
    assert np.all(pose[..., 11, 0] > pose[..., 12, 0])
    face = parts["face"].reshape(*X.shape[:2], 468, 3)
    assert np.all(face[..., 1].mean(-1) < pose[..., 11, 1])  # face above the shoulders
    for side, pose_wrist in (("right_hand", 16), ("left_hand", 15)):
        hand = parts[side].reshape(*X.shape[:2], 21, 3)
        detected = np.any(hand != 0, axis=(-1, -2))
        assert np.all(np.abs(hand[detected][:, 0, 2]) < 0.02)  # a hand's wrist z is ~0
        # The hand's wrist sits on the pose's wrist of the same side.
        gap = np.linalg.norm(hand[..., 0, :2] - pose[..., pose_wrist, :2], axis=-1)[detected]
        assert gap.max() < 0.05


def test_hands_go_missing_like_in_real_recordings(arrays):
    X, y = arrays
    parts = blocks(X)
    right_missing = np.all(parts["right_hand"] == 0, axis=-1)
    left_missing = np.all(parts["left_hand"] == 0, axis=-1)
    assert 0.02 < right_missing.mean() < 0.5  # the dominant hand: now and then
    assert left_missing.mean() > 0.5  # one-handed signs: the other hand rests out of view
    hello = config.SPEC_ACTIONS.index("Hello")
    assert left_missing[y == hello].all()
    help_ = config.SPEC_ACTIONS.index("Help")
    assert not left_missing[y == help_].all()  # two-handed signs show the left hand


def test_signs_differ_in_motion(arrays):
    X, y = arrays
    right_wrist = blocks(X)["pose"].reshape(*X.shape[:2], 33, 4)[..., 16, :2]
    mean_paths = np.stack([right_wrist[y == label].mean(0) for label in range(10)])
    distances = np.linalg.norm((mean_paths[:, None] - mean_paths[None]).reshape(10, 10, -1), axis=-1)
    off_diagonal = distances[~np.eye(10, dtype=bool)]
    please, sorry = config.SPEC_ACTIONS.index("Please"), config.SPEC_ACTIONS.index("Sorry")
    # Every pair of signs moves differently, except Please/Sorry: same motion, other hand shape.
    assert distances[please, sorry] < np.sort(off_diagonal)[2]
    hand = blocks(X)["right_hand"].reshape(*X.shape[:2], 21, 3)
    tip_spread = lambda label: np.linalg.norm(hand[y == label][..., 8, :2] - hand[y == label][..., 0, :2], axis=-1)  # noqa: E731
    assert tip_spread(please)[tip_spread(please) > 0].mean() > 1.5 * tip_spread(sorry)[tip_spread(sorry) > 0].mean()


def test_written_tree_follows_the_contract_and_loads(tmp_path):
    root = synth.write_mp_data(str(tmp_path / "MP_Data"), actions=["Hello", "Yes"], sequences=3, seed=1)
    assert sorted(os.listdir(root)) == ["Hello", "Yes"]
    assert sorted(os.listdir(os.path.join(root, "Hello")), key=int) == ["0", "1", "2"]
    frame = np.load(os.path.join(root, "Yes", "2", "29.npy"))
    assert frame.shape == (1662,) and frame.dtype == np.float64
    dataset = data.load_dataset(root)
    X, _ = synth.synth_arrays(["Hello", "Yes"], sequences=3, seed=1)
    np.testing.assert_allclose(dataset.X, X.astype(np.float32))
    with pytest.raises(FileExistsError):
        synth.write_mp_data(root)
    with pytest.raises(ValueError, match="knows"):
        synth.synth_arrays(["Goodbye"], sequences=1)
