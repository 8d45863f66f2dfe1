"""The packed cache: used only while the frames are unchanged, never a source of stale data."""

import os
import time

import numpy as np
import pytest

from signtrain.data import cache, cachefolder, dataset as data, synth

ACTIONS = ["Hello", "Yes", "No"]


@pytest.fixture
def settled_tree(tmp_path, monkeypatch):
    """A small MP_Data tree whose files count as settled (not changed in the last seconds)."""
    monkeypatch.setattr(cache, "RACY_SECONDS", 0)
    return synth.write_mp_data(str(tmp_path / "MP_Data"), actions=ACTIONS, sequences=4)


def _load(data_dir):
    return data.load_dataset(data_dir, ACTIONS)


def _count(monkeypatch):
    """Count the sequence folders read from their frames (not from the cache)."""
    reads = []
    original = data.load_sequence

    def counting(folder, length):
        reads.append(folder)
        return original(folder, length)

    monkeypatch.setattr(data, "load_sequence", counting)
    return reads


def test_second_load_comes_from_the_cache_and_is_identical(settled_tree, monkeypatch):
    first = _load(settled_tree)
    assert os.path.exists(os.path.join(settled_tree, cachefolder.CACHE_DIR))
    reads = _count(monkeypatch)
    second = _load(settled_tree)
    assert reads == []
    np.testing.assert_array_equal(second.X, first.X)
    assert second.X.dtype == np.float32 and list(second.y) == list(first.y)
    assert second.sequences == first.sequences


def test_a_changed_frame_is_read_again(settled_tree, monkeypatch):
    first = _load(settled_tree)
    frame = os.path.join(settled_tree, "Yes", "2", "7.npy")
    changed = np.full(1662, 0.25)
    np.save(frame, changed)
    stat = os.stat(frame)
    os.utime(frame, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # as a later edit would
    reads = _count(monkeypatch)
    second = _load(settled_tree)
    assert reads == [os.path.join(settled_tree, "Yes", "2")]  # only that sequence
    row = second.sequences.index(("Yes", "2"))
    np.testing.assert_allclose(second.X[row, 7], changed)
    assert not np.allclose(first.X[row, 7], changed)


def test_deleted_added_and_broken_sequences_are_seen(settled_tree, monkeypatch):
    _load(settled_tree)
    os.remove(os.path.join(settled_tree, "Hello", "1", "12.npy"))
    os.rename(os.path.join(settled_tree, "No", "3"), os.path.join(settled_tree, "No", "9"))
    with open(os.path.join(settled_tree, "Yes", "0", "3.npy"), "wb") as handle:
        handle.write(b"garbage")
    second = _load(settled_tree)
    reasons = {(s["action"], s["sequence"]): s["reason"] for s in second.skipped}
    assert reasons[("Hello", "1")] == "missing frame 12.npy"
    assert "unreadable frame 3.npy" in reasons[("Yes", "0")]
    assert ("No", "9") in second.sequences and ("No", "3") not in second.sequences
    # The skip reasons are cached too, and still right on the next load.
    reads = _count(monkeypatch)
    third = _load(settled_tree)
    assert reads == [] and third.skipped == second.skipped


def test_fresh_files_are_not_cached(tmp_path, monkeypatch):
    """Folders written within RACY_SECONDS could change again within the timestamp granularity."""
    tree = synth.write_mp_data(str(tmp_path / "MP_Data"), actions=ACTIONS, sequences=4)
    monkeypatch.setattr(cache, "RACY_SECONDS", 3600)
    _load(tree)
    assert not os.path.exists(os.path.join(tree, cachefolder.CACHE_DIR))  # nothing settled: no cache at all
    reads = _count(monkeypatch)
    _load(tree)
    assert len(reads) == 12


@pytest.mark.parametrize("damage", ["index not JSON", "index of another version", "rows truncated",
                                    "a flipped byte in a middle frame", "rows deleted"])
def test_a_damaged_cache_is_ignored_and_replaced(settled_tree, damage, monkeypatch):
    """An interrupted copy, a sync conflict, a bit flipped on disk: the frames are read again (the
    index's CRC of each row catches a change the first and last frames do not show)."""
    first = _load(settled_tree)
    folder = os.path.join(settled_tree, cachefolder.CACHE_DIR)
    index_path = os.path.join(folder, cachefolder.INDEX_FILE)
    rows_path = os.path.join(folder, cachefolder.read_index(folder)[1]["X_30x1662"]["file"])
    if damage == "index not JSON":
        open(index_path, "w").write("{not json")
    elif damage == "index of another version":
        text = open(index_path).read().replace(f'"version": {cachefolder.CACHE_VERSION}', '"version": 1')
        open(index_path, "w").write(text)
    elif damage == "rows truncated":
        packed = open(rows_path, "rb").read()
        open(rows_path, "wb").write(packed[: len(packed) // 2])
    elif damage == "a flipped byte in a middle frame":
        rows = np.load(rows_path, mmap_mode="r+")
        rows[5, 15, 100] = rows[5, 15, 100] + 1.0  # sequence 5, frame 15: neither first nor last frame
        rows.flush()
        del rows
    else:
        os.remove(rows_path)
    reads = _count(monkeypatch)
    second = _load(settled_tree)
    np.testing.assert_array_equal(second.X, first.X)
    assert len(reads) == (1 if damage == "a flipped byte in a middle frame" else 12)
    assert len(cachefolder.read(folder)) == 12  # rewritten, readable
    reads.clear()
    _load(settled_tree)
    assert reads == []


def test_an_earlier_versions_cache_file_is_removed_when_the_cache_is_written(settled_tree):
    earlier = os.path.join(settled_tree, cachefolder.EARLIER_CACHE)
    open(earlier, "wb").write(b"PK old packed cache")
    _load(settled_tree)
    assert not os.path.exists(earlier) and os.path.isdir(os.path.join(settled_tree, cachefolder.CACHE_DIR))


def test_a_frame_changed_during_a_long_load_is_never_cached(tmp_path, monkeypatch):
    """A rewrite within the file system's timestamp tick keeps size and time: only the racy rule,
    measured from the start of the load, keeps it out of the cache."""
    tree = synth.write_mp_data(str(tmp_path / "MP_Data"), actions=ACTIONS, sequences=4)
    now = time.time_ns()
    for folder, _, files in os.walk(tree):
        for name in files + [""]:
            os.utime(os.path.join(folder, name), ns=(now, now))  # all written just before the load
    monkeypatch.setattr(cache, "RACY_SECONDS", 1)
    frame = os.path.join(tree, "Hello", "0", "5.npy")
    original = data.load_sequence

    def slow_and_edited(folder, length):
        result = original(folder, length)
        if folder.endswith(os.path.join("Hello", "0")):
            stat = os.stat(frame)
            np.save(frame, np.full(1662, 0.75))  # same size ...
            os.utime(frame, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # ... and the same time
            time.sleep(1.5)  # the rest of the load takes longer than RACY_SECONDS
        return result

    monkeypatch.setattr(data, "load_sequence", slow_and_edited)
    _load(tree)  # read before the edit: the old values, whose entry must not be cached
    monkeypatch.setattr(data, "load_sequence", original)
    second = _load(tree)
    row = second.sequences.index(("Hello", "0"))
    np.testing.assert_allclose(second.X[row, 5], 0.75)


def test_a_read_only_data_folder_still_loads(settled_tree, monkeypatch):
    monkeypatch.setattr(np, "save", lambda *args, **kwargs: (_ for _ in ()).throw(PermissionError("read-only")))
    dataset = _load(settled_tree)
    assert len(dataset.y) == 12
    assert not os.path.exists(os.path.join(settled_tree, cachefolder.CACHE_DIR))
    assert sorted(os.listdir(settled_tree)) == sorted(ACTIONS)


def test_the_cache_file_is_not_an_action(settled_tree):
    _load(settled_tree)
    assert data.resolve_actions(settled_tree) == sorted(ACTIONS)


def test_only_the_cache_is_written_beside_the_data(settled_tree):
    before = sorted(os.listdir(settled_tree))
    _load(settled_tree)
    time.sleep(0.01)
    assert sorted(os.listdir(settled_tree)) == sorted(before + [cachefolder.CACHE_DIR])


def test_a_damaged_row_of_a_sign_not_loaded_is_not_carried_into_a_rewrite(settled_tree, monkeypatch):
    """Loading some signs rewrites the cache with the others' rows copied: only where their CRC holds."""
    truth = _load(settled_tree)
    folder = os.path.join(settled_tree, cachefolder.CACHE_DIR)
    entries, groups = cachefolder.read_index(folder)
    rows = np.load(os.path.join(folder, groups["X_30x1662"]["file"]), mmap_mode="r+")
    rows[entries[os.path.join("No", "2")]["row"], 15, 100] += 1.0  # a middle frame: only the CRC can tell
    rows.flush()
    del rows
    frame = os.path.join(settled_tree, "Hello", "1", "3.npy")
    np.save(frame, np.full(1662, 0.5))
    os.utime(frame, ns=(os.stat(frame).st_atime_ns, os.stat(frame).st_mtime_ns - 10**10))  # an edit, settled
    data.load_dataset(settled_tree, ["Hello", "Yes"])  # rewrites the cache, No's rows copied over
    reads = _count(monkeypatch)
    again = data.load_dataset(settled_tree, ["No"])
    assert reads == [os.path.join(settled_tree, "No", "2")]  # read from its frames, not the damaged row
    np.testing.assert_array_equal(again.X, truth.X[[i for i, (action, _) in enumerate(truth.sequences)
                                                    if action == "No"]])


def test_old_leftovers_are_removed_but_not_the_files_a_live_process_is_writing(settled_tree):
    _load(settled_tree)
    folder = os.path.join(settled_tree, cachefolder.CACHE_DIR)
    live = os.path.basename(cachefolder._new_stem(folder)) + ".X_30x1662.part0.npy"  # this process
    dead = "some-other-host-123-0123456789ab.X_30x1662.part0.npy"
    old = time.time() - cachefolder.LEFTOVER_SECONDS - 60
    for name in (live, dead):
        open(os.path.join(folder, name), "wb").write(b"rows")
        os.utime(os.path.join(folder, name), (old, old))
    frame = os.path.join(settled_tree, "Yes", "0", "0.npy")
    os.utime(frame, ns=(os.stat(frame).st_atime_ns, os.stat(frame).st_mtime_ns - 10**10))  # changed: a rewrite
    _load(settled_tree)
    assert os.path.exists(os.path.join(folder, live)) and not os.path.exists(os.path.join(folder, dead))
