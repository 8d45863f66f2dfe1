"""Real recordings other people made (../shared/realdata): the pipeline as a user runs it."""

import json
import os

import numpy as np
import pytest

from conftest import realdata_file, unpack_realdata
from signtrain import cli
from signtrain.data import dataset as data


@pytest.mark.slow
def test_full_default_run_on_a_real_10_sign_recording(tmp_path, capsys):
    data_dir = unpack_realdata("lujamanandhar_10signs.npz", tmp_path / "MP_Data")
    assert cli.main(["train", "--data", data_dir]) == 0  # every spec default: 200 epochs, patience 30
    out = capsys.readouterr().out
    run_dir = os.path.join("runs", "train", "exp")
    assert f"run saved to {run_dir}" in out
    metrics = json.load(open(os.path.join(run_dir, "metrics.json")))
    print({key: metrics[key] for key in ("test_accuracy", "epochs_run", "train_seconds", "best_val_accuracy")})
    # The sign folders (the cache folder .signtrain_cache is there too once the frames are old enough to cache).
    folders = sorted(name for name in os.listdir(data_dir)
                     if os.path.isdir(os.path.join(data_dir, name)) and not data.is_ignored(name))
    assert metrics["actions"] == folders  # 'see you later' and all, sorted
    assert metrics["n_test"] == 30 and metrics["skipped_sequences"] == []
    assert metrics["test_accuracy"] >= 0.85


def test_our_unpacking_writes_what_the_shared_unpack_script_writes(tmp_path):
    ours = unpack_realdata("akadeepanshu_6signs.npz", tmp_path / "ours", limit_per_class=2)
    theirs = unpack_realdata("akadeepanshu_6signs.npz", tmp_path / "theirs", limit_per_class=2, with_script=True)
    files = lambda root: sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)  # noqa: E731
    assert files(ours) == files(theirs) and len(files(ours)) == 6 * 2 * 30
    assert "I Love You/0/29.npy" in files(ours)
    for name in files(ours):
        assert open(os.path.join(ours, name), "rb").read() == open(os.path.join(theirs, name), "rb").read()


def test_loader_reads_a_real_tree_exactly(tmp_path):
    npz = dict(np.load(realdata_file("mokshavs03_5signs.npz")))  # read each array once
    data_dir = unpack_realdata("mokshavs03_5signs.npz", tmp_path / "MP_Data")
    dataset = data.load_dataset(data_dir)
    assert dataset.actions == sorted(str(a) for a in npz["actions_raw"])
    assert dataset.X.shape == npz["X"].shape
    # Same sequences, same frames, same values, whatever order the folders were read in.
    index = {(str(npz["actions_raw"][label]), str(seq)): row for row, (label, seq) in
             enumerate(zip(npz["y"], npz["seq_ids"]))}
    for row, key in enumerate(dataset.sequences):
        np.testing.assert_array_equal(dataset.X[row], npz["X"][index[key]])
        assert dataset.actions[dataset.y[row]] == key[0]


def test_a_real_258_feature_recording_is_refused_unless_asked_for(tmp_path):
    data_dir = unpack_realdata("shahdm7md_258features.npz", tmp_path / "MP_Data")
    with pytest.raises(ValueError, match=r"frames have 258 values \(pose \+ left hand \+ right hand, no face"):
        data.load_dataset(data_dir)
    dataset = data.load_dataset(data_dir, any_layout=True)
    assert dataset.X.shape[1:] == (30, 258) and len(dataset.actions) == 6


def test_a_real_recording_in_another_block_order_is_refused(tmp_path):
    data_dir = unpack_realdata("soyachunkz_face_pose_lh_rh.npz", tmp_path / "MP_Data")
    with pytest.raises(ValueError, match="look like the blocks are in the order face, pose, left_hand, right_hand"):
        data.load_dataset(data_dir)


@pytest.mark.parametrize("name", ["ismokedata_6signs.npz", "akadeepanshu_6signs.npz", "lujamanandhar_10signs.npz"])
def test_real_recordings_in_the_contract_layout_are_accepted(tmp_path, name):
    dataset = data.load_dataset(unpack_realdata(name, tmp_path / "MP_Data"))
    assert dataset.X.shape[1:] == (30, 1662) and dataset.skipped == []
