"""Hostile input, round 2: each case ends in a clear message that names the file or flag and the
fix, with the exit code, and the user's files unchanged."""

import hashlib
import os

import numpy as np
import pytest

from conftest import write_sequence
from signtrain import cli, config
from signtrain.data import synth


def snapshot(root):
    """{relative path: sha1} of every file under root but signtrain's own cache beside the data
    (README "Speed"): proof that nothing the user had changed."""
    found = {}
    for folder, _, names in os.walk(root):
        if ".signtrain_cache" in folder.split(os.sep):
            continue
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as handle:
                found[os.path.relpath(path, root)] = hashlib.sha1(handle.read()).hexdigest()
    return found


@pytest.fixture
def small_data(tmp_path):
    data_dir = synth.write_mp_data(str(tmp_path / "MP_Data"), actions=["Hello", "Yes", "No"], sequences=10, seed=2)
    return data_dir, snapshot(data_dir)


def run(capsys, *argv):
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_one_signs_folder_is_named_with_its_parent(small_data, capsys):
    data_dir, before = small_data
    code, output = run(capsys, "check", "--data", os.path.join(data_dir, "Hello"))
    assert code == 1 and "looks like one sign's folder" in output and f"--data {os.path.abspath(data_dir)!r}" in output
    assert snapshot(data_dir) == before


def test_a_zip_given_as_test_data_names_that_flag(small_data, tmp_path, capsys):
    data_dir, before = small_data
    archive = tmp_path / "other.zip"
    archive.write_bytes(b"PK\x05\x06" + b"\0" * 18)
    code, output = run(capsys, "train", "--data", data_dir, "--test-data", str(archive), "--out", str(tmp_path / "r"))
    assert code == 2 and "--test-data" in output and "is a zip file" in output and "Unzip it first" in output
    assert not os.path.exists(tmp_path / "r") and snapshot(data_dir) == before


@pytest.mark.parametrize("content", [b"hello, these are not keypoints\n", bytes(range(256)) * 4])
def test_a_file_that_is_not_npy_is_called_so_without_unsafe_advice(small_data, capsys, content):
    data_dir, _ = small_data
    with open(os.path.join(data_dir, "Yes", "2", "5.npy"), "wb") as handle:
        handle.write(content)
    before = snapshot(data_dir)
    code, output = run(capsys, "check", "--data", data_dir)
    assert "Yes/2: unreadable frame 5.npy (not an .npy file: it starts with" in output
    assert "np.save" in output and "allow_pickle" not in output and "pickled" not in output
    assert snapshot(data_dir) == before


def test_a_pickled_frame_says_what_it_holds_and_never_suggests_unpickling(small_data, capsys):
    data_dir, _ = small_data
    np.save(os.path.join(data_dir, "No", "1", "3.npy"), np.array([{"x": 1}] * 3, dtype=object), allow_pickle=True)
    code, output = run(capsys, "check", "--data", data_dir)
    assert "No/1: unreadable frame 3.npy (it holds Python objects (pickled data), not numbers" in output
    assert "allow_pickle=True" not in output


@pytest.mark.parametrize("damage, cause", [
    ("29 frames", "6 x missing frame 29.npy"),
    ("(1, 1662) frames", "6 x frame 0.npy has shape (1, 1662), expected a flat array"),
])
def test_when_no_sequence_is_usable_the_message_names_the_real_cause(tmp_path, capsys, damage, cause):
    data_dir = str(tmp_path / "MP_Data")
    rng = np.random.default_rng(0)
    for action in ("Hello", "Yes"):
        for sequence in range(3):
            frames = [rng.random(config.NUM_FEATURES) for _ in range(30)]
            frames = frames[:29] if damage == "29 frames" else [frame[None] for frame in frames]
            write_sequence(data_dir, action, sequence, frames)
    before = snapshot(data_dir)
    code, output = run(capsys, "check", "--data", data_dir)
    assert code == 1 and "no usable sequence for ['Hello', 'Yes']" in output and cause in output
    assert "needs frames 0.npy..29.npy" not in output and snapshot(data_dir) == before


def test_an_empty_new_sign_folder_is_named_with_the_way_on(small_data, capsys):
    data_dir, _ = small_data
    os.makedirs(os.path.join(data_dir, "Thanks"))
    code, output = run(capsys, "check", "--data", data_dir)
    assert code == 1 and f"{os.path.join(data_dir, 'Thanks')!r} holds no sequence folder" in output
    assert "--actions Hello,No,Yes" in output


def test_a_run_folder_inside_the_data_folder_is_refused(small_data, capsys):
    data_dir, before = small_data
    code, output = run(capsys, "train", "--data", data_dir, "--out", os.path.join(data_dir, "myrun"))
    assert code == 2 and "is inside the data folder" in output and "--out" in output
    assert snapshot(data_dir) == before


@pytest.mark.parametrize("flag, value, says", [
    ("--seed", str(2**32), "expected a whole number from 0 to 4294967295, got 4294967296"),
    ("--seed", "-1", "expected a whole number from 0 to 4294967295, got -1"),
    ("--epochs", "0", "expected a whole number >= 1, got 0"),
    ("--epochs", "-1", "expected a whole number >= 1, got -1"),
    ("--batch-size", "0", "expected a whole number >= 1, got 0"),
])
def test_numbers_out_of_range_are_refused_at_once_naming_the_flag(small_data, capsys, flag, value, says):
    data_dir, _ = small_data
    with pytest.raises(SystemExit) as stopped:
        cli.main(["train", "--data", data_dir, flag, value])
    error = capsys.readouterr().err
    assert stopped.value.code == 2 and f"argument {flag}: {says}" in error


def test_an_alias_for_a_sign_nobody_knows_is_warned_about(short_run, capsys, tmp_path):
    _, run_dir, data_dir = short_run
    run_dir = str(_copy_run(run_dir, tmp_path))  # evaluate writes RUN_DIR/evaluations/: not into the shared run
    code, output = run(capsys, "evaluate", "--model", run_dir, "--data", data_dir, "--alias", "Thank_You=Nope")
    assert code == 0
    assert "warning: --alias Thank_You=Nope: 'Nope' is neither a sign of the model" in output


def _copy_run(run_dir, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("evaluations"))
    return copy


def test_evaluate_refuses_an_actions_file_from_another_run(short_run, capsys, tmp_path):
    _, run_dir, data_dir = short_run
    copy = _copy_run(run_dir, tmp_path)
    np.save(copy / config.ACTIONS_FILE, np.array(["Hello", "Yes", "No"]))
    code, output = run(capsys, "evaluate", "--model", str(copy), "--data", data_dir)
    assert code == 2 and "outputs 10 classes but" in output and "names 3 signs" in output
    assert not os.path.exists(copy / "evaluations")
    np.save(copy / config.ACTIONS_FILE, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    code, output = run(capsys, "evaluate", "--model", str(copy), "--data", data_dir)
    assert code == 2 and "actions.npy is not a readable actions.npy (it holds Python objects" in output


def test_evaluate_refuses_frames_of_another_width_naming_both(short_run, capsys, tmp_path):
    _, run_dir, _ = short_run
    other = str(tmp_path / "narrow")
    for sequence in range(2):
        write_sequence(other, "Hello", sequence, [np.random.default_rng(sequence).random(258)] * 30)
    code, output = run(capsys, "evaluate", "--model", run_dir, "--data", other, "--any-layout")
    assert code == 2 and "have 258 values" in output and "takes 1662" in output


def test_a_read_only_run_folder_is_refused_before_converting_or_scoring(short_run, capsys, tmp_path, monkeypatch):
    from signtrain import files
    from signtrain.export import convert as export

    _, run_dir, data_dir = short_run
    copy = _copy_run(run_dir, tmp_path)
    before = sorted(os.listdir(copy))
    converted = []
    monkeypatch.setattr(export, "export_and_check", lambda *args, **kwargs: converted.append(args))

    def read_only(*args, dir=None, **kwargs):  # what a read-only folder does (tests may run as root)
        raise PermissionError(13, "Permission denied", dir)

    monkeypatch.setattr(files.tempfile, "mkstemp", read_only)
    for argv in (["export", str(copy), "--format", "onnx"], ["evaluate", "--model", str(copy), "--data", data_dir]):
        code, output = run(capsys, *argv)
        assert code == 2 and f"cannot write into {str(copy)!r} (Permission denied)" in output
        assert f"signtrain {argv[0]} writes its result; nothing was done" in output and "chmod u+w" in output
    assert not converted and sorted(os.listdir(copy)) == before


def test_two_runs_cannot_claim_the_same_out_folder(tmp_path):
    from signtrain.training.runfolder import CLAIM_FILE, prepare_run_dir, release

    out = str(tmp_path / "shared_out")
    first = prepare_run_dir(out)
    assert os.path.exists(os.path.join(first, CLAIM_FILE))
    with pytest.raises(FileExistsError, match="another signtrain run"):
        prepare_run_dir(out)  # the folder is still empty but claimed
    release(first)
    assert os.listdir(first) == []


def test_ctrl_c_before_the_first_epoch_leaves_no_folder_that_blocks_the_same_out(small_data, tmp_path, monkeypatch,
                                                                                  capsys):
    from signtrain.training import fitting

    data_dir, before = small_data
    out = str(tmp_path / "run")

    def interrupted_fit(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(fitting, "fit", interrupted_fit)
    code, output = run(capsys, "train", "--data", data_dir, "--out", out)
    assert code == 130 and "interrupted before the first epoch ended: nothing to keep" in output
    assert not os.path.exists(out) and snapshot(data_dir) == before
    os.makedirs(out)  # a folder the user made: emptied, kept
    code, _ = run(capsys, "train", "--data", data_dir, "--out", out)
    assert code == 130 and os.listdir(out) == []


def _failing_at_epoch(monkeypatch, error, epoch=2):
    """Make every training run raise `error` at the end of `epoch` (after its checkpoint)."""
    from tensorflow import keras

    from signtrain.training import fitting

    real_callbacks = fitting.callbacks

    class Fails(keras.callbacks.Callback):
        def on_epoch_end(self, index, logs=None):
            if index + 1 == epoch:
                raise error

    monkeypatch.setattr(fitting, "callbacks", lambda *args: real_callbacks(*args) + [Fails()])


def test_a_full_disk_is_not_called_out_of_memory_and_the_run_resumes(small_data, tmp_path, monkeypatch, capsys):
    import errno

    import tensorflow as tf

    data_dir, before = small_data
    full = [OSError(errno.ENOSPC, "No space left on device"),
            tf.errors.ResourceExhaustedError(None, None, "save failed: No space left on device")]
    for index, error in enumerate(full):
        out = str(tmp_path / f"run{index}")
        with monkeypatch.context() as patch:
            _failing_at_epoch(patch, error)
            code, output = run(capsys, "train", "--data", data_dir, "--out", out, "--epochs", "4")
        assert code == 2 and "OUT_OF_MEMORY" not in output and "is full" in output
        assert f"continue with: signtrain train --resume {out}" in output
        assert os.path.exists(os.path.join(out, config.BEST_MODEL_FILE)) and ".signtrain_training" not in os.listdir(out)
    code, output = run(capsys, "train", "--resume", out)
    assert code == 0 and f"resuming {out} after epoch 2" in output
    assert snapshot(data_dir) == before


def test_running_out_of_memory_still_says_so(small_data, tmp_path, monkeypatch, capsys):
    import tensorflow as tf

    data_dir, _ = small_data
    _failing_at_epoch(monkeypatch, tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor"))
    code, output = run(capsys, "train", "--data", data_dir, "--out", str(tmp_path / "run"), "--epochs", "4")
    assert code == 2 and "OUT_OF_MEMORY: out of memory at batch size 16. Try --batch-size 8" in output


def test_resume_keeps_the_split_it_started_with_and_refuses_new_flags(small_data, tmp_path, monkeypatch, capsys):
    import json
    import shutil

    import yaml

    data_dir, _ = small_data
    out = str(tmp_path / "run")
    with monkeypatch.context() as patch:
        _failing_at_epoch(patch, KeyboardInterrupt(), epoch=2)
        code, output = run(capsys, "train", "--data", data_dir, "--out", out, "--epochs", "4")
    assert code == 130 and "--resume" in output
    split = yaml.safe_load(open(os.path.join(out, config.ARGS_FILE)))["split"]
    assert len(split["test"]) == 3 and len(split["train"]) == 27 and not set(split["test"]) & set(split["train"])
    for flags in (["--epochs", "5"], ["--seed", "3"], ["--no-precise-bn"]):  # --data: where moved recordings are now
        code, output = run(capsys, "train", "--resume", out, *flags)
        assert code == 2 and f"would change them. Drop {flags[0]}" in output
    for take in range(10, 16):  # new takes recorded after the run started
        shutil.copytree(os.path.join(data_dir, "Hello", "0"), os.path.join(data_dir, "Hello", str(take)))
    code, output = run(capsys, "train", "--resume", out)
    assert code == 0 and "note: 6 sequences added since" in output
    metrics = json.load(open(os.path.join(out, config.METRICS_FILE)))
    assert ["/".join(pair) for pair in metrics["test_sequences"]] == split["test"]
    assert metrics["n_train"] + metrics["n_val"] == 27


def test_resume_refuses_when_a_recorded_sequence_is_gone(small_data, tmp_path, monkeypatch, capsys):
    import shutil

    import yaml

    data_dir, _ = small_data
    out = str(tmp_path / "run")
    with monkeypatch.context() as patch:
        _failing_at_epoch(patch, KeyboardInterrupt(), epoch=1)
        assert run(capsys, "train", "--data", data_dir, "--out", out, "--epochs", "3")[0] == 130
    gone = yaml.safe_load(open(os.path.join(out, config.ARGS_FILE)))["split"]["test"][0]
    shutil.rmtree(os.path.join(data_dir, gone))
    code, output = run(capsys, "train", "--resume", out)
    assert code == 2 and "are gone or no longer usable" in output and gone in output


def test_a_run_stopped_while_writing_its_files_is_finished_by_resume(small_data, tmp_path, capsys):
    """Ctrl-C after training, while the files are written (action_model.h5 there, metrics.json not):
    --resume trains no further epoch and writes the rest."""
    import json

    data_dir, _ = small_data
    out = str(tmp_path / "run")
    assert run(capsys, "train", "--data", data_dir, "--out", out, "--epochs", "3", "--patience", "1")[0] == 0
    finished = json.load(open(os.path.join(out, config.METRICS_FILE)))
    for name in (config.METRICS_FILE, config.REPORT_FILE):
        os.remove(os.path.join(out, name))
    code, output = run(capsys, "train", "--resume", out)
    assert code == 0, output
    metrics = json.load(open(os.path.join(out, config.METRICS_FILE)))
    assert metrics["epochs_run"] == finished["epochs_run"] and metrics["test_sequences"] == finished["test_sequences"]
    assert os.path.exists(os.path.join(out, config.REPORT_FILE))
    code, output = run(capsys, "train", "--resume", out)
    assert code == 2 and "finished already" in output


@pytest.mark.parametrize("wrong", ["another width", "a NaN row", "all zeros"])
def test_a_cache_holding_other_arrays_is_never_believed_over_the_frames(small_data, wrong, capsys):
    from signtrain.data import cachefolder, dataset as data

    data_dir, _ = small_data
    truth = data.load_dataset(data_dir)  # writes the cache
    cache_path = os.path.join(data_dir, cachefolder.CACHE_DIR)
    entries = cachefolder.read(cache_path)
    for name, (signature, value) in list(entries.items())[:5]:
        if wrong == "another width":
            value = value[:, :10].copy()
        elif wrong == "a NaN row":
            value = value.copy()
            value[7] = np.nan
        else:
            value = np.zeros_like(value)
        entries[name] = (signature, value)
    cachefolder.write(cache_path, {}, {}, entries)
    again = data.load_dataset(data_dir)
    np.testing.assert_array_equal(again.X, truth.X)
    assert again.num_features == config.NUM_FEATURES and again.skipped == []
    code, output = run(capsys, "check", "--data", data_dir)
    assert code == 0 and "10 values" not in output and "--any-layout" not in output
    streamed = data.load_dataset(data_dir, stream=True)  # the packed cache is checked the same way
    np.testing.assert_array_equal(np.asarray(streamed.X), truth.X)


@pytest.mark.parametrize("damage", ["truncated", "plain HDF5", "text"])
def test_a_damaged_model_file_is_named_with_what_to_do(short_run, tmp_path, capsys, damage):
    _, run_dir, data_dir = short_run
    copy = _copy_run(run_dir, tmp_path)
    model_path = copy / config.MODEL_FILE
    if damage == "truncated":
        model_path.write_bytes(model_path.read_bytes()[:5000])
    elif damage == "plain HDF5":
        import h5py

        model_path.unlink()
        with h5py.File(model_path, "w") as handle:
            handle["numbers"] = np.arange(10)
    else:
        model_path.write_text("not a model")
    code, output = run(capsys, "evaluate", "--model", str(copy), "--data", data_dir)
    assert code == 2 and f"{model_path} is not a Keras model signtrain can load" in output
    assert "copy the run's file again, or train again" in output


def test_ctrl_c_while_the_files_are_written_says_how_to_finish_and_resume_does(small_data, tmp_path, monkeypatch,
                                                                               capsys):
    """Ctrl-C after the last epoch, once action_model.h5 is written: exit 130, the resume command,
    a resumable folder; and Ctrl-C before the fit leaves no folder that blocks the same --out."""
    import json

    from signtrain.export import convert as export
    from signtrain.training import train as train_module

    data_dir, before = small_data
    out = str(tmp_path / "run")
    real_save = export.save_h5

    def save_then_interrupt(model, path, *args):
        real_save(model, path, *args)
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(export, "save_h5", save_then_interrupt)
        code, output = run(capsys, "train", "--data", data_dir, "--out", out, "--epochs", "2")
    assert code == 130 and f"Continue with: signtrain train --resume {out}" in output
    assert not os.path.exists(os.path.join(out, config.METRICS_FILE))
    assert not [name for name in os.listdir(out) if ".partial" in name]
    code, output = run(capsys, "train", "--resume", out)
    assert code == 0, output
    assert json.load(open(os.path.join(out, config.METRICS_FILE)))["epochs_run"] == 2
    assert snapshot(data_dir) == before

    def interrupted_plan(prepared):
        raise KeyboardInterrupt

    fresh = str(tmp_path / "fresh")
    monkeypatch.setattr(train_module, "plan", interrupted_plan)
    code, output = run(capsys, "train", "--data", data_dir, "--out", fresh)
    assert code == 130 and "interrupted before the first epoch ended: nothing to keep" in output
    assert not os.path.exists(fresh)
