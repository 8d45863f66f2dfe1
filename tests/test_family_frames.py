"""Hostile input, round 2 (issue 16), family 1: damaged frames in an MP_Data tree, generated.

`signtrain check` and `load_dataset` never raise; a damaged sequence is skipped with a reason that
names its file (or loaded with exactly the values its files hold, for harmless changes); nothing
the user had is changed, and no unpickling advice. tests/test_hostile.py holds the hand-written cases.
"""

import os
import re
import shutil

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from signtrain import config
from signtrain.data import cache, dataset as data, synth
from families import family_settings, fresh_copy, unlinked, with_examples
from test_hostile import run, snapshot


FRAME_ACTIONS = ["Hello", "Yes"]
FRAME_SEQUENCES = 7  # 14 sequences: with up to 3 skipped, check still has a 90/10 split (exit 0)
FRAME_SEED = 11


@pytest.fixture(scope="module")
def frame_tree(tmp_path_factory):
    """A valid tree and the float32 values each of its sequences must load as."""
    root = synth.write_mp_data(str(tmp_path_factory.mktemp("frames") / "MP_Data"), actions=FRAME_ACTIONS,
                               sequences=FRAME_SEQUENCES, seed=FRAME_SEED)
    X, y = synth.synth_arrays(FRAME_ACTIONS, FRAME_SEQUENCES, seed=FRAME_SEED)
    truth = {(FRAME_ACTIONS[label], str(index % FRAME_SEQUENCES)): X[index].astype(np.float32)
             for index, label in enumerate(y)}
    return root, truth


def _frame(rng, shape=(config.NUM_FEATURES,)):
    return rng.random(shape)


# Each damage: (kind, parameters drawn by hypothesis). Written by _damage_frame.
_odd_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)
FRAME_DAMAGE_PARAMETERS = {
    "truncate": st.floats(0, 1, exclude_max=True),  # the share of the bytes kept
    "random_bytes": st.tuples(st.sampled_from([b"", b"\x93NUMPY", b"\x93NUMPY\x01\x00", b"PK\x03\x04",
                                               b"\x89HDF\r\n\x1a\n", b"\x80\x04"]), st.binary(max_size=300)),
    "text": _odd_text,
    "pickled": st.sampled_from(["dicts", "strings", "mixed", "nested"]),
    "shape": st.sampled_from([(1, 1662), (1661,), (30, 1662), (0,), (), (1663,), (831, 2)]),
    "dtype": st.sampled_from(["U8", "S4", "complex128", "int_overflow", "uint64_max", "float16", "float16_inf",
                              "float64_beyond_float32", "float64_max", "bool", "datetime64", "timedelta",
                              "structured", "void", "big_endian", "int8_small", "float32"]),
    "nonfinite": st.tuples(st.sampled_from([np.nan, np.inf, -np.inf]), st.integers(0, config.NUM_FEATURES - 1),
                           st.sampled_from(["float64", "float32", "float16"])),
    "missing": st.none(),
    "extra": st.integers(30, 40),
    "directory": st.booleans(),  # empty, or holding a file
    "empty": st.none(),
    "npz": st.none(),
    "flip_values": st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=4),
    "narrow_sequence": st.sampled_from([258, 1661, 126]),
}
FRAME_DAMAGE = st.sampled_from(sorted(FRAME_DAMAGE_PARAMETERS)).flatmap(
    lambda kind: FRAME_DAMAGE_PARAMETERS[kind].map(lambda value: (kind, value)))
# One plain case of every kind, whatever the generated ones happen to draw.
FRAME_EXAMPLES = [("truncate", 0.5), ("random_bytes", (b"", b"\x00\xff garbage")), ("text", "x,y\n0.1,0.2"),
                  ("pickled", "dicts"), ("shape", (1, 1662)), ("shape", (1661,)), ("shape", (30, 1662)),
                  ("shape", (0,)), ("dtype", "U8"), ("dtype", "complex128"), ("dtype", "int_overflow"),
                  ("dtype", "float16"), ("dtype", "float64_beyond_float32"), ("nonfinite", (np.nan, 7, "float64")),
                  ("nonfinite", (np.inf, 0, "float32")), ("missing", None), ("extra", 30), ("directory", False),
                  ("empty", None), ("npz", None), ("flip_values", [(100, 1)]), ("narrow_sequence", 258)]


def _damage_frame(folder, frame, kind, value, rng):
    """Apply one damage to folder/<frame>.npy. Returns the file names the damage touched."""
    path = os.path.join(folder, f"{frame}.npy")
    if not os.path.isfile(path):  # an earlier damage removed it or made a folder of it: a frame again
        if os.path.isdir(path):
            shutil.rmtree(path)
        np.save(path, _frame(rng))
    original = unlinked(path)  # written anew below, never through the link to the shared tree
    if kind == "truncate":
        open(path, "wb").write(original[:int(value * len(original))])
    elif kind == "random_bytes":
        prefix, body = value
        open(path, "wb").write(prefix + body)
    elif kind == "text":
        open(path, "w", encoding="utf-8").write(value or "0.1, 0.2, 0.3\n")
    elif kind == "pickled":
        objects = {"dicts": [{"x": 0.5}] * 3, "strings": ["0.1", "0.2"], "mixed": [0.1, "a", None],
                   "nested": [np.zeros(3), [1, 2]]}[value]
        array = np.empty(len(objects), dtype=object)
        array[:] = objects
        np.save(path, array, allow_pickle=True)
    elif kind == "shape":
        np.save(path, _frame(rng, value))
    elif kind == "dtype":
        size = config.NUM_FEATURES
        array = {
            "U8": lambda: np.array(["0.5"] * size),
            "S4": lambda: np.array([b"0.5"] * size),
            "complex128": lambda: _frame(rng).astype(np.complex128),
            "int_overflow": lambda: np.full(size, 2**62 + 1, dtype=np.int64),
            "uint64_max": lambda: np.full(size, np.iinfo(np.uint64).max, dtype=np.uint64),
            "float16": lambda: _frame(rng).astype(np.float16),
            "float16_inf": lambda: np.full(size, 70000.0).astype(np.float16),  # beyond float16: inf
            "float64_beyond_float32": lambda: np.concatenate([_frame(rng)[:-1], [1e39]]),
            "float64_max": lambda: np.full(size, np.finfo(np.float32).max, dtype=np.float64),
            "bool": lambda: _frame(rng) > 0.5,
            "datetime64": lambda: np.zeros(size, dtype="datetime64[s]"),
            "timedelta": lambda: np.zeros(size, dtype="timedelta64[s]"),
            "structured": lambda: np.zeros(size, dtype=[("x", "f8"), ("y", "f8")]),
            "void": lambda: np.zeros(size, dtype="V8"),
            "big_endian": lambda: _frame(rng).astype(">f8"),
            "int8_small": lambda: (_frame(rng) > 0.5).astype(np.int8),
            "float32": lambda: _frame(rng).astype(np.float32),
        }[value]()
        np.save(path, array)
    elif kind == "nonfinite":
        number, position, dtype = value
        array = _frame(rng).astype(dtype)
        array[position] = number
        np.save(path, array)
    elif kind == "missing":
        pass  # removed above
    elif kind == "extra":  # the frame itself kept, one more beside it
        open(path, "wb").write(original)
        path = os.path.join(folder, f"{value}.npy")
        np.save(path, _frame(rng))
    elif kind == "directory":
        os.mkdir(path)
        if value:
            np.save(os.path.join(path, "0.npy"), _frame(rng))
    elif kind == "empty":
        open(path, "wb").close()
    elif kind == "npz":
        np.savez(path[:-4], frame=_frame(rng))
        os.replace(path[:-4] + ".npz", path)
    elif kind == "flip_values":  # bytes of the values only: the file stays a valid .npy of other numbers
        raw = bytearray(original)
        values = config.NUM_FEATURES * 8
        offset, span = (len(raw) - values, values) if len(raw) > values + 64 else (0, len(raw))
        for position, mask in value if span else ():
            raw[offset + position % span] ^= mask
        open(path, "wb").write(bytes(raw))
    elif kind == "narrow_sequence":  # every frame of the sequence in another (consistent) width
        for index in range(config.SEQUENCE_LENGTH):
            frame_path = os.path.join(folder, f"{index}.npy")
            if os.path.isdir(frame_path):
                shutil.rmtree(frame_path)
            elif os.path.exists(frame_path):
                os.remove(frame_path)
            np.save(frame_path, _frame(rng, (value,)))
        return {f"{index}.npy" for index in range(config.SEQUENCE_LENGTH)}
    return {os.path.basename(path)}


def _reference_sequence(folder):
    """What one sequence folder must load as, read independently of signtrain: its float32 values,
    or None where it must be skipped (numpy's own np.load, no fast path, no cache)."""
    frames = []
    for index in range(config.SEQUENCE_LENGTH):
        path = os.path.join(folder, f"{index}.npy")
        if not os.path.isfile(path):
            return None
        try:
            frame = np.load(path, allow_pickle=False)
        except Exception:  # noqa: BLE001 - anything numpy refuses
            return None
        if not isinstance(frame, np.ndarray) or frame.ndim != 1 or frame.dtype.kind not in "iuf":
            return None
        frames.append(frame)
    if len({frame.shape for frame in frames}) != 1 or frames[0].shape != (config.NUM_FEATURES,):
        return None  # another width than the rest of the data: skipped too
    if any(name.endswith(".npy") and name[:-4].isdigit() and int(name[:-4]) >= config.SEQUENCE_LENGTH
           for name in os.listdir(folder)):
        return None
    values = np.stack(frames)
    if not np.isfinite(values).all():
        return None
    with np.errstate(over="ignore"):
        values = values.astype(np.float32)
    if not np.isfinite(values).all():
        return None
    # Values no camera gives (config.MAX_ABS_VALUE: MediaPipe's keypoints are image fractions) skip too.
    return values if np.abs(values).max() <= config.MAX_ABS_VALUE else None


def _names_one_of(text, names):
    """Whether text names one of the files (5.npy, not as the end of 15.npy), or, for a sequence
    of another width altogether, says that width (the line names the sequence folder)."""
    return (any(re.search(r"(?<![0-9])" + re.escape(name), text) for name in names)
            or "values, the rest of the data" in text)


def _assert_loaded_as_expected(dataset, expected, damaged_files):
    """dataset holds exactly the usable sequences, with their exact values; each skipped damaged
    sequence has a reason that names one of its damaged files (or its width, for a narrow one)."""
    usable = [key for key, value in expected.items() if value is not None]
    assert sorted(dataset.sequences) == sorted(usable)
    for row, key in zip(np.asarray(dataset.X), dataset.sequences):
        np.testing.assert_array_equal(row, expected[key], err_msg=f"{key} loaded with other values")
    reasons = {(entry["action"], entry["sequence"]): entry["reason"] for entry in dataset.skipped}
    assert set(reasons) == {key for key, value in expected.items() if value is None}
    for key, reason in reasons.items():
        assert _names_one_of(reason, damaged_files[key]), (key, reason, damaged_files[key])
        assert "allow_pickle" not in reason


@family_settings(20)
@with_examples([dict(damage=[(index % 14, (7 * index) % 30, case)], warm=index % 2 == 0, stream=index % 3 == 0)
                 for index, case in enumerate(FRAME_EXAMPLES)])
@given(damage=st.lists(st.tuples(st.integers(0, len(FRAME_ACTIONS) * FRAME_SEQUENCES - 1),
                                 st.integers(0, config.SEQUENCE_LENGTH - 1), FRAME_DAMAGE),
                       min_size=1, max_size=4).filter(lambda picks: len({pick[0] for pick in picks}) <= 3),
       warm=st.booleans(), stream=st.booleans())
def test_damaged_frames_are_skipped_with_their_file_named_or_read_exactly(frame_tree, tmp_path, capsys,
                                                                           monkeypatch, damage, warm, stream):
    base, truth = frame_tree
    monkeypatch.setattr(cache, "RACY_SECONDS", 0)  # fresh files are cached: the cache must not hide damage
    root = fresh_copy(base, tmp_path)
    if warm:  # a cache from before the damage
        data.load_dataset(root)
    rng = np.random.default_rng(len(damage))
    keys = sorted(truth)
    damaged_files = {}
    for pick, frame, (kind, value) in damage:
        key = keys[pick]
        damaged_files.setdefault(key, set()).update(
            _damage_frame(os.path.join(root, *key), frame, kind, value, rng))
    expected = {key: (_reference_sequence(os.path.join(root, *key)) if key in damaged_files else truth[key])
                for key in keys}
    for _, _, (kind, _) in damage:
        event(f"damage: {kind}")
    event(f"damaged sequences skipped: {sum(expected[key] is None for key in damaged_files)} of {len(damaged_files)}")
    before = snapshot(root)

    code, output = run(capsys, "check", "--data", root)
    assert code == 0, output  # at most 3 of 14 sequences skipped: still trainable, warnings only
    assert "allow_pickle" not in output and "verdict: ready to train" in output
    for key, value in expected.items():
        line = f"skipped {key[0]}/{key[1]}: "
        if value is None:
            assert line in output, (key, output)
        else:
            assert line not in output
    for text in output.splitlines():  # a line about a damaged sequence names it and its file
        for key in damaged_files:
            if text.startswith(f"skipped {key[0]}/{key[1]}:"):
                assert _names_one_of(text, damaged_files[key]), (text, damaged_files[key])

    _assert_loaded_as_expected(data.load_dataset(root, use_cache=False), expected, damaged_files)
    _assert_loaded_as_expected(data.load_dataset(root, stream=stream), expected, damaged_files)
    assert snapshot(root) == before  # nothing but signtrain's own cache was written
