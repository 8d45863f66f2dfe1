"""train --stream: data bigger than memory, read batch by batch from the packed cache."""

import errno
import json
import os

import numpy as np
import pytest

from conftest import write_sequence
from signtrain import cli
from signtrain.data import cache, cachefolder, dataset as data, synth
from signtrain.training import stream

ACTIONS = ["Hello", "Yes", "No"]


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """A small tree with one broken sequence and one of another frame width; files count as settled."""
    monkeypatch.setattr(cache, "RACY_SECONDS", 0)
    data_dir = synth.write_mp_data(str(tmp_path / "MP_Data"), actions=ACTIONS, sequences=5)
    os.remove(os.path.join(data_dir, "Yes", "2", "5.npy"))
    write_sequence(data_dir, "No", 7, [np.zeros(258)] * 30)
    return data_dir


def _reads(monkeypatch):
    reads, original = [], data.load_sequence
    monkeypatch.setattr(data, "load_sequence", lambda folder, length: reads.append(folder) or original(folder, length))
    return reads


def test_a_streamed_dataset_is_a_read_only_map_of_what_the_loader_reads(tree, monkeypatch):
    in_memory = data.load_dataset(tree, ACTIONS, use_cache=False)
    streamed = data.load_dataset(tree, ACTIONS, stream=True)
    assert isinstance(streamed.X, np.memmap) and streamed.X.dtype == np.float32
    np.testing.assert_array_equal(streamed.X, in_memory.X)
    assert streamed.sequences == in_memory.sequences and list(streamed.y) == list(in_memory.y)
    assert streamed.skipped == in_memory.skipped and len(streamed.skipped) == 2  # broken, 258 wide
    with pytest.raises(ValueError):
        streamed.X[0, 0, 0] = 1.0  # the cache can never be changed through the map

    # Nothing changed: the packed file is used as it is, not read from the frames nor rewritten.
    reads = _reads(monkeypatch)
    packed = os.path.join(tree, cachefolder.CACHE_DIR, cachefolder.INDEX_FILE)
    before = os.stat(packed)
    np.testing.assert_array_equal(data.load_dataset(tree, ACTIONS, stream=True).X, in_memory.X)
    assert reads == [] and (os.stat(packed).st_ino, os.stat(packed).st_mtime_ns) == (before.st_ino, before.st_mtime_ns)

    # Unchanged folders come from the packed file; an edited frame is read again and packed anew.
    frame = os.path.join(tree, "Hello", "3", "4.npy")
    np.save(frame, np.full(1662, 0.5))
    stat = os.stat(frame)
    os.utime(frame, ns=(stat.st_atime_ns, stat.st_mtime_ns - 10**10))  # an edit, settled by now
    again = data.load_dataset(tree, ACTIONS, stream=True)
    assert reads == [os.path.join(tree, "Hello", "3")]
    np.testing.assert_allclose(again.X[again.sequences.index(("Hello", "3")), 4], 0.5)
    # The plain loader reads the streamed pack as its cache.
    reads.clear()
    np.testing.assert_array_equal(data.load_dataset(tree, ACTIONS).X, again.X)
    assert reads == []


def test_too_fresh_folders_are_packed_for_this_run_but_read_again_next_time(tmp_path, monkeypatch):
    data_dir = synth.write_mp_data(str(tmp_path / "MP_Data"), actions=ACTIONS[:2], sequences=3)
    first = data.load_dataset(data_dir, ACTIONS[:2], stream=True)  # just written: within RACY_SECONDS
    assert len(first.X) == 6
    reads = _reads(monkeypatch)
    data.load_dataset(data_dir, ACTIONS[:2], stream=True)
    assert len(reads) == 6


def test_stream_needs_a_writable_data_folder(tree, monkeypatch):
    # Where the temp file cannot be created (a read-only folder; root ignores chmod, so a missing one).
    monkeypatch.setattr(cachefolder, "_new_stem", lambda cache_dir: os.path.join(tree, "no such folder", "pack"))
    with pytest.raises(ValueError, match=r"--stream keeps the sequences in .*signtrain_cache and could not "
                                         r"write it .*Check that .* is writable and has room \(about"):
        data.load_dataset(tree, ACTIONS, stream=True)


def test_a_full_disk_says_how_much_room_it_needs_and_leaves_nothing_behind(tree, monkeypatch):
    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache.os, "replace", full)
    with pytest.raises(ValueError, match=r"the disk is full: it needs about 6 MiB for 16 sequences while packing\. Free space"):
        data.load_dataset(tree, ACTIONS, stream=True)
    assert not os.path.exists(os.path.join(tree, cachefolder.CACHE_DIR))  # nothing left behind


def test_batches_hold_the_rows_asked_for_in_order(tree):
    streamed = data.load_dataset(tree, ACTIONS, stream=True)
    rows = np.array([5, 0, 9, 3, 12, 1])
    targets = np.eye(6, dtype=np.float32)
    batches = list(stream.rows_dataset(streamed.X, rows, targets, batch_size=4))
    assert [len(x) for x, _ in batches] == [4, 2] and len(stream.rows_dataset(streamed.X, rows, targets, 4)) == 2
    np.testing.assert_array_equal(np.concatenate([x for x, _ in batches]), streamed.X[rows])
    np.testing.assert_array_equal(np.concatenate([t for _, t in batches]), targets)
    np.testing.assert_array_equal(stream.read_rows(streamed.X, rows), streamed.X[rows])


def test_a_streamed_run_trains_exactly_what_the_in_memory_run_trains(short_run, tmp_path):
    """Same rows, same once-drawn order, same batches: the same model, to float noise."""
    _, plain_run, data_dir = short_run
    streamed_run = str(tmp_path / "streamed")
    assert cli.main(["train", "--data", data_dir, "--epochs", "3", "--seed", "7", "--stream",
                     "--out", streamed_run]) == 0
    plain, streamed = (json.load(open(os.path.join(run, "metrics.json"))) for run in (plain_run, streamed_run))
    assert streamed["n_train"] == plain["n_train"] and streamed["n_test"] == plain["n_test"]
    assert streamed["epochs_run"] == plain["epochs_run"] == 3
    assert streamed["test_sequences"] == plain["test_sequences"]
    assert streamed["confusion_matrix"] == plain["confusion_matrix"]
    assert streamed["test_accuracy"] == pytest.approx(plain["test_accuracy"])
    assert streamed["test_loss"] == pytest.approx(plain["test_loss"], rel=1e-4)
    assert streamed["reload_max_abs_diff"] < 1e-5
    from signtrain.model import network as model_lib

    sequences = data.load_dataset(data_dir).X[:40]
    outputs = [model_lib.load_model(os.path.join(run, "action_model.h5")).predict(sequences, verbose=0)
               for run in (plain_run, streamed_run)]
    np.testing.assert_allclose(outputs[1], outputs[0], atol=1e-4)


def test_stream_and_augment_are_refused_together(tree, capsys):
    assert cli.main(["train", "--data", tree, "--actions", ",".join(ACTIONS), "--stream", "--augment",
                     "--epochs", "1"]) != 0
    assert "--augment makes its copies in memory and cannot be combined with --stream" in capsys.readouterr().err


def test_a_streamed_data_set_keeps_its_rows_when_another_load_rewrites_the_cache(tree):
    """The map is of this pack's own files: a later rewrite (another process, another sign set)
    removes them from the folder, not from under a run that streams them."""
    truth = data.load_dataset(tree, ACTIONS, use_cache=False)
    streamed = data.load_dataset(tree, ACTIONS, stream=True)
    frame = os.path.join(tree, "Hello", "0", "3.npy")
    np.save(frame, np.full(1662, 0.25))
    os.utime(frame, ns=(os.stat(frame).st_atime_ns, os.stat(frame).st_mtime_ns - 10**10))
    data.load_dataset(tree, ACTIONS[:2])  # rewrites the cache: the streamed run's files are replaced
    np.testing.assert_array_equal(streamed.X, truth.X)


def test_a_pack_of_several_parts_is_joined_and_a_full_disk_then_leaves_nothing(tree, monkeypatch):
    folders = [os.path.join(tree, action, str(n)) for action in ACTIONS for n in range(5)]
    truth = data.load_dataset(tree, ACTIONS, use_cache=False)
    packed, results = cache.pack(tree, folders, data.load_sequence, 30, chunk=4)  # 4 parts, joined
    rows = [result[1] for result in results if not isinstance(result, str)]
    np.testing.assert_array_equal(packed["X_30x1662"][rows], truth.X)
    real_replace = os.replace

    def full_when_joined(source, target):
        if source.endswith(".joining"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(source, target)

    frame = os.path.join(tree, "No", "1", "2.npy")
    os.utime(frame, ns=(os.stat(frame).st_atime_ns, os.stat(frame).st_mtime_ns - 10**10))  # changed: packed anew
    before = sorted(os.listdir(os.path.join(tree, cachefolder.CACHE_DIR)))
    monkeypatch.setattr(cachefolder.os, "replace", full_when_joined)
    with pytest.raises(ValueError, match="the disk is full"):
        cache.pack(tree, folders, data.load_sequence, 30, chunk=4)
    assert sorted(os.listdir(os.path.join(tree, cachefolder.CACHE_DIR))) == before  # the old cache, nothing else
