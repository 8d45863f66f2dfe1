import os

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from conftest import write_sequence
from signtrain import config
from signtrain.data import dataset as data


def marked_frame(label, sequence, frame_index):
    """A frame whose blocks are recognisable: pose 1.x, face 2.x, left hand 3.x, right hand 4.x."""
    frame = np.empty(config.NUM_FEATURES)
    for block_number, (_, start, stop) in enumerate(config.BLOCKS, start=1):
        frame[start:stop] = block_number + np.arange(stop - start) / 10_000
    frame[0] = 100 * label + sequence + frame_index / 100  # which sequence and frame this is
    return frame


def load(root, actions=None):
    # Marker frames are not plausible MediaPipe values: the layout check has tests of its own.
    return data.load_dataset(root, actions, any_layout=True)


def make_tree(root, actions, sequences=3, frames=config.SEQUENCE_LENGTH):
    for label, action in enumerate(actions):
        for sequence in range(sequences):
            write_sequence(root, action, sequence, [marked_frame(label, sequence, i) for i in range(frames)])
    return str(root)


def test_loads_every_frame_in_order_and_keeps_the_keypoint_order(tmp_path):
    root = make_tree(tmp_path / "MP_Data", ["Hello", "Yes"], sequences=2)
    dataset = load(root)
    assert dataset.actions == ["Hello", "Yes"]  # not the spec's 10: folder names, sorted
    assert dataset.X.shape == (4, 30, 1662) and dataset.X.dtype == np.float32
    assert dataset.y.tolist() == [0, 0, 1, 1]
    assert dataset.sequences == [("Hello", "0"), ("Hello", "1"), ("Yes", "0"), ("Yes", "1")]
    # Frame 7 of Yes/1 is where it belongs, and each block kept its place.
    frame = dataset.X[3, 7]
    assert frame[0] == pytest.approx(101.07, abs=1e-4)
    for block_number, (_, start, stop) in enumerate(config.BLOCKS, start=1):
        assert np.floor(frame[start + 1 : stop]).tolist() == [block_number] * (stop - start - 1)
    assert dataset.skipped == [] and dataset.notes == []


def test_spec_actions_keep_the_spec_order(tmp_path):
    root = make_tree(tmp_path / "MP_Data", sorted(config.SPEC_ACTIONS), sequences=1)
    assert data.resolve_actions(root) == list(config.SPEC_ACTIONS)
    dataset = load(root)
    # Label i is the spec's i-th action: frame marker 100 * (folder's label in make_tree) tells which.
    for label, action in enumerate(config.SPEC_ACTIONS):
        assert dataset.actions[label] == action
        assert dataset.sequences[int(np.flatnonzero(dataset.y == label)[0])][0] == action


def test_folder_names_with_spaces_and_requested_actions(tmp_path):
    root = make_tree(tmp_path / "MP_Data", ["see you later", "take care", "again"], sequences=1)
    assert data.resolve_actions(root) == ["again", "see you later", "take care"]
    dataset = load(root, ["take care", "see you later"])
    assert dataset.actions == ["take care", "see you later"]
    assert dataset.y.tolist() == [0, 1]
    with pytest.raises(ValueError, match=r"--actions names \['Hello'\].*Folders found"):
        load(root, ["Hello", "again"])


def test_reads_all_numeric_sequences_not_just_0_to_29(tmp_path):
    root = tmp_path / "MP_Data"
    for sequence in (0, 5, 31, 100):
        write_sequence(root, "Hello", sequence, [marked_frame(0, sequence % 50, i) for i in range(30)])
    write_sequence(root, "No", 2, [marked_frame(1, 2, i) for i in range(30)])
    dataset = load(str(root))
    assert [name for _, name in dataset.sequences] == ["0", "5", "31", "100", "2"]


def test_bad_sequences_are_skipped_and_reported(tmp_path):
    root = make_tree(tmp_path / "MP_Data", ["Hello", "No"], sequences=2)
    hello = os.path.join(root, "Hello")
    os.remove(os.path.join(hello, "0", "12.npy"))  # a missing frame
    write_sequence(root, "Hello", 2, [marked_frame(0, 2, i) for i in range(30)])
    with open(os.path.join(hello, "2", "3.npy"), "wb") as handle:  # a truncated frame
        handle.write(b"\x93NUMPY garbage")
    write_sequence(root, "Hello", 3, [marked_frame(0, 3, i)[:258] for i in range(30)])  # wrong length
    write_sequence(root, "No", 4, [np.array([{"evil": 1}] * 1662, dtype=object)] * 30)  # pickled objects
    frames = [marked_frame(1, 5, i) for i in range(30)]
    frames[9] = frames[9].copy()
    frames[9][5] = np.nan
    write_sequence(root, "No", 5, frames)
    os.makedirs(os.path.join(root, "No", "extra takes"))  # non-numeric folder: ignored with a note
    open(os.path.join(root, "No", ".DS_Store"), "w").close()  # stray file: ignored silently
    os.makedirs(os.path.join(root, ".ipynb_checkpoints"))  # not an action

    dataset = load(root)
    assert dataset.actions == ["Hello", "No"]
    assert sorted(dataset.sequences) == [("Hello", "1"), ("No", "0"), ("No", "1")]
    reasons = {(s["action"], s["sequence"]): s["reason"] for s in dataset.skipped}
    assert set(reasons) == {("Hello", "0"), ("Hello", "2"), ("Hello", "3"), ("No", "4"), ("No", "5")}
    assert reasons[("Hello", "0")] == "missing frame 12.npy"
    assert reasons[("Hello", "2")].startswith("unreadable frame 3.npy")
    assert "258 values" in reasons[("Hello", "3")] and "1662" in reasons[("Hello", "3")]
    assert reasons[("No", "4")].startswith("unreadable frame 0.npy") and "pickle" in reasons[("No", "4")]
    assert reasons[("No", "5")] == "frame 9.npy contains NaN or inf"
    assert len(dataset.notes) == 2
    assert "extra takes" in dataset.notes[0] + dataset.notes[1] and ".DS_Store" in dataset.notes[0] + dataset.notes[1]


def test_an_action_with_no_usable_sequence_is_an_error(tmp_path):
    root = make_tree(tmp_path / "MP_Data", ["Hello", "No"], sequences=1)
    os.remove(os.path.join(root, "No", "0", "0.npy"))
    with pytest.raises(ValueError, match=r"no usable sequence for \['No'\]"):
        load(root)


def test_missing_or_empty_data_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no action folders"):
        load(str(tmp_path / "empty"))


def test_split_is_the_specs_stratified_split():
    y = np.repeat(np.arange(10), 30)
    X = np.random.default_rng(0).normal(size=(300, 4))
    train_idx, test_idx = data.split_indices(y, seed=42)
    assert len(test_idx) == 30 and len(train_idx) == 270
    assert np.bincount(y[test_idx]).tolist() == [3] * 10
    # Exactly what the spec's cell does on (X, one-hot y).
    y_onehot = np.eye(10)[y]
    _, X_test, _, _ = train_test_split(X, y_onehot, test_size=0.1, random_state=42, stratify=y_onehot)
    np.testing.assert_array_equal(X[test_idx], X_test)
    assert not np.array_equal(data.split_indices(y, seed=1)[1], test_idx)


def test_split_refuses_too_few_sequences():
    with pytest.raises(ValueError, match="too few sequences for a stratified 90/10 split"):
        data.split_indices(np.repeat(np.arange(10), 3))


def test_archives_zip_garbage_and_out_of_range_values_are_skipped_with_a_reason(tmp_path):
    root = str(tmp_path / "MP_Data")
    good = [np.full(1662, 0.5)] * 30
    for action in ("Hello", "Yes"):
        for sequence in range(3):
            write_sequence(root, action, sequence, good)
    np.savez(os.path.join(root, "Hello", "1", "3.npz"), a=np.zeros(1662))
    os.replace(os.path.join(root, "Hello", "1", "3.npz"), os.path.join(root, "Hello", "1", "3.npy"))
    with open(os.path.join(root, "Yes", "1", "4.npy"), "wb") as handle:
        handle.write(b"PK\x03\x04 not really a zip")
    np.save(os.path.join(root, "Yes", "2", "6.npy"), np.full(1662, 1e39))  # finite in float64, inf in float32
    dataset = data.load_dataset(root, ["Hello", "Yes"])
    reasons = {(s["action"], s["sequence"]): s["reason"] for s in dataset.skipped}
    assert reasons[("Hello", "1")] == "frame 3.npy is an .npz archive, expected one array (np.save)"
    assert reasons[("Yes", "1")].startswith("unreadable frame 4.npy (BadZipFile")
    assert reasons[("Yes", "2")].startswith("frame 6.npy has a value beyond float32's range")
    assert len(dataset.y) == 3 and np.isfinite(dataset.X).all()
