"""Hostile input, round 2 (issue 16), family 2: damaged caches (`<data>/.signtrain_cache/`), generated.

The load gives exactly what the frames give, plain and streamed, whatever the damage (bytes, files,
index values of the right or the wrong type, cached reasons), and leaves a cache that is believed again.
"""

import json
import os
import shutil

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from signtrain import config
from signtrain.data import cache, cachefolder, dataset as data, synth
from families import JSON_VALUES, family_settings, fresh_copy, unlinked, with_examples
from test_hostile import snapshot


CACHE_ACTIONS = ["Hello", "Yes"]
CACHE_DIR = cachefolder.CACHE_DIR


def _without_racy_rule(function, *args, **kwargs):
    """function(...) with fresh folders cached (module fixtures cannot use monkeypatch)."""
    racy = cache.RACY_SECONDS
    cache.RACY_SECONDS = 0
    try:
        return function(*args, **kwargs)
    finally:
        cache.RACY_SECONDS = racy


@pytest.fixture(scope="module")
def cache_tree(tmp_path_factory):
    """A tree whose cache holds every kind of entry: rows of the contract's width (group
    X_30x1662), a sequence of another width (its own group, X_30x258, skipped by the loader) and an
    unusable sequence (a cached reason). Returns the folder (with its cache) and the truth: the
    load without the cache."""
    root = synth.write_mp_data(str(tmp_path_factory.mktemp("cached") / "MP_Data"), actions=CACHE_ACTIONS,
                               sequences=4, seed=13)
    os.remove(os.path.join(root, "Yes", "3", "12.npy"))
    rng = np.random.default_rng(0)
    for index in range(config.SEQUENCE_LENGTH):
        os.makedirs(os.path.join(root, "Hello", "4"), exist_ok=True)
        np.save(os.path.join(root, "Hello", "4", f"{index}.npy"), rng.random(258))
    truth = data.load_dataset(root, use_cache=False)
    _without_racy_rule(data.load_dataset, root)
    _, groups = cachefolder.read_index(os.path.join(root, CACHE_DIR))
    assert sorted(groups) == ["X_30x1662", "X_30x258"]
    return root, truth


def _frame_reads(monkeypatch):
    """A list that gets the folder of every sequence read from its frames (not from the cache)."""
    reads, real = [], data.load_sequence

    def counted(folder, *args, **kwargs):
        reads.append(os.path.relpath(folder))
        return real(folder, *args, **kwargs)

    monkeypatch.setattr(data, "load_sequence", counted)
    return reads


def _same_as_truth(dataset, truth, reasons=False):
    np.testing.assert_array_equal(np.asarray(dataset.X), truth.X)
    assert np.asarray(dataset.X).dtype == np.float32
    np.testing.assert_array_equal(dataset.y, truth.y)
    assert dataset.sequences == truth.sequences and dataset.actions == truth.actions
    if reasons:
        assert dataset.skipped == truth.skipped


def _cache_files(root):
    """{"index": path, "rows": the 1662-wide group's .npy, "narrow": the 258-wide group's .npy}."""
    cache_dir = os.path.join(root, CACHE_DIR)
    _, groups = cachefolder.read_index(cache_dir)
    return {"index": os.path.join(cache_dir, cachefolder.INDEX_FILE),
            "rows": os.path.join(cache_dir, groups["X_30x1662"]["file"]),
            "narrow": os.path.join(cache_dir, groups["X_30x258"]["file"])}


def _rewrite_bytes(path, change):
    raw = bytearray(unlinked(path))
    open(path, "wb").write(bytes(change(raw)))


def _edit_index(root, edit):
    path = os.path.join(root, CACHE_DIR, cachefolder.INDEX_FILE)
    raw = unlinked(path)
    try:
        index = json.loads(raw)
    except ValueError:  # an earlier damage left no JSON to edit
        index = None
    if isinstance(index, dict):
        edit(index)
        raw = json.dumps(index).encode()
    open(path, "wb").write(raw)


def _other_npy(kind, rows):
    """A valid .npy in place of the rows' group: another shape, dtype or order of the same kind of data."""
    original = np.load(rows)
    rng = np.random.default_rng(1)
    return {
        "float64": lambda: original.astype(np.float64),
        "big_endian": lambda: original.astype(">f4"),
        "fortran_order": lambda: np.asfortranarray(original),  # same values: may be believed
        "rows_permuted": lambda: original[::-1].copy(),
        "zeros": lambda: np.zeros_like(original),
        "fewer_rows": lambda: original[:-1].copy(),
        "more_rows": lambda: np.concatenate([original, original[:1]]),
        "narrower": lambda: original[:, :, :10].copy(),
        "two_dimensional": lambda: original.reshape(len(original), -1).copy(),
        "middle_value_changed": lambda: _changed(original, (1, 15, 800)),
        "first_frame_changed": lambda: _changed(original, (2, 0, 3)),
        "noise": lambda: rng.random(original.shape).astype(np.float32),
        "nan": lambda: np.full_like(original, np.nan),
    }[kind]()


def _changed(array, where):
    array = array.copy()
    array[where] += 0.25
    return array


WELL_TYPED_VALUES = {  # key of the index -> values of the right JSON type but wrong
    "row": st.one_of(st.integers(-12, 12), st.sampled_from([2**31, 2**63, -2**63, 10**30])),
    "crc": st.one_of(st.integers(0, 2**32 - 1), st.sampled_from([-1, 2**64])),
    "group": st.sampled_from(["X_30x1662", "X_30x258", "X_1x1", "", "X_30x1662 ", "../X_30x1662"]),
    "signature": st.one_of(st.sampled_from(["", "0" * 64, "unsettled"]), st.text(max_size=70)),
    "rows": st.one_of(st.integers(-3, 12), st.sampled_from([2**63, 10**30])),
    "file": st.sampled_from(["index.json", "../Hello/0/0.npy", "nonexistent.npy", "/dev/null", "", ".",
                             "../../MP_Data", "X_30x1662.npy"]),
    "version": st.sampled_from([1, 3, 0, -2]),
}

CACHE_DAMAGE = st.one_of(
    st.tuples(st.just("flip"), st.sampled_from(["index", "rows", "narrow"]),
              st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), min_size=1, max_size=8)),
    st.tuples(st.just("truncate"), st.sampled_from(["index", "rows", "narrow"]), st.floats(0, 1, exclude_max=True)),
    st.tuples(st.just("delete"), st.sampled_from(["index", "rows", "narrow", "folder"]), st.none()),
    st.tuples(st.just("replace_npy"), st.sampled_from(["float64", "big_endian", "fortran_order", "rows_permuted",
                                                       "zeros", "fewer_rows", "more_rows", "narrower",
                                                       "two_dimensional", "middle_value_changed",
                                                       "first_frame_changed", "noise", "nan"]), st.none()),
    st.tuples(st.just("swap"), st.sampled_from(["row", "row+crc", "entry"]), st.tuples(st.integers(0, 50),
                                                                                   st.integers(1, 50))),
    st.tuples(st.just("index_value"), st.sampled_from(["entry", "group", "top"]),
              st.tuples(st.integers(0, 50), st.sampled_from(sorted(WELL_TYPED_VALUES))).flatmap(
                  lambda pick: WELL_TYPED_VALUES[pick[1]].map(lambda value: (pick[0], pick[1], value)))),
    st.tuples(st.just("index_delete"), st.sampled_from(["entry", "group", "top"]),
              # (an entry without its "group": test_index_entries_of_any_shape_...)
              st.tuples(st.integers(0, 50), st.sampled_from(["signature", "row", "crc", "file", "rows",
                                                             "version", "entries", "groups", "*"]))),
    st.tuples(st.just("index_rename"), st.sampled_from(["entry", "group"]), st.tuples(st.integers(0, 50),
                                                                                  st.integers(0, 50))),
)


def _pick(mapping, position):
    names = sorted(mapping)
    return names[position % len(names)] if names else None


def _damage_cache(root, kind, target, value):
    cache_dir = os.path.join(root, CACHE_DIR)
    if not os.path.exists(os.path.join(cache_dir, cachefolder.INDEX_FILE)):
        return  # an earlier damage took the index: nothing left to damage
    try:
        paths = _cache_files(root)
    except (KeyError, TypeError, AttributeError):
        paths = {"index": os.path.join(cache_dir, cachefolder.INDEX_FILE)}
    if kind in ("flip", "truncate", "replace_npy") or (kind == "delete" and target != "folder"):
        path = paths.get(target, paths["index"]) if kind != "replace_npy" else paths.get("rows")
        if path is None or not os.path.isfile(path):
            return
    if kind == "flip":
        def flip(raw):
            for where, mask in value if raw else ():
                raw[int(where * len(raw))] ^= mask
            return raw
        _rewrite_bytes(path, flip)
    elif kind == "truncate":
        _rewrite_bytes(path, lambda raw: raw[:int(value * len(raw))])
    elif kind == "delete":
        shutil.rmtree(cache_dir) if target == "folder" else os.remove(path)
    elif kind == "replace_npy":
        try:
            replacement = _other_npy(target, path)
        except ValueError:  # an earlier damage left no .npy to make another of
            return
        os.remove(path)
        np.save(path, replacement)
    elif kind in ("swap", "index_value", "index_delete", "index_rename"):
        def edit(index):
            entries = index.get("entries") if isinstance(index.get("entries"), dict) else {}
            groups = index.get("groups") if isinstance(index.get("groups"), dict) else {}
            if kind == "swap":
                rows = {name: entry for name, entry in entries.items() if isinstance(entry, dict) and "row" in entry}
                first, second = _pick(rows, value[0]), _pick(rows, value[0] + value[1])
                if first is None or first == second:
                    return
                fields = {"row": ["row"], "row+crc": ["row", "crc"],
                          "entry": [key for key in rows[first] if key != "signature"]}[target]
                for field in fields:
                    rows[first][field], rows[second][field] = rows[second].get(field), rows[first].get(field)
                return
            if kind == "index_rename":
                where = entries if target == "entry" else groups
                first, second = _pick(where, value[0]), _pick(where, value[1])
                if first is not None and first != second:
                    where[first], where[second] = where[second], where[first]
                return
            position, key = value[0], value[1]
            holder = (index if target == "top" else
                      entries.get(_pick(entries, position)) if target == "entry" else groups.get(_pick(groups, position)))
            if not isinstance(holder, dict):
                return
            if kind == "index_value":
                holder[key] = value[2]
            elif key == "*":
                holder.clear()
            else:
                holder.pop(key, None)
        _edit_index(root, edit)


def _load_checked(root, stream):
    """load_dataset(root, stream): the dataset, or the message of the ValueError it raised (the only
    exception allowed, and only one that names the cache folder and the way out)."""
    try:
        return data.load_dataset(root, stream=stream)
    except ValueError as error:
        message = str(error)
        assert CACHE_DIR in message and ("delete the folder" in message or "run again" in message), message
        return message


def _check_damaged_cache(root, truth, stream, monkeypatch, reasons=False):
    """The family's property, once the cache of root is damaged: the load gives what the frames give
    (or a ValueError naming the cache), touches no frame, and leaves a cache believed next time."""
    before = snapshot(root)
    loaded = _load_checked(root, stream)
    assert snapshot(root) == before  # the frames are never touched
    if isinstance(loaded, str):
        event("raised ValueError")
        return
    _same_as_truth(loaded, truth, reasons)
    del loaded  # a streamed X maps the cache; closed before it is rewritten
    with monkeypatch.context() as patch:  # the cache it left is believed: nothing read from frames again
        reads = _frame_reads(patch)
        again = data.load_dataset(root, stream=stream)
    _same_as_truth(again, truth, reasons)
    assert reads == [], reads


CACHE_EXAMPLES = [
    [("index_value", "entry", (0, "row", -1))], [("index_value", "entry", (1, "row", 10**30))],
    [("index_value", "entry", (2, "row", 3))], [("index_value", "entry", (2, "group", "X_30x258"))],
    [("index_value", "entry", (3, "crc", 0))], [("index_value", "entry", (4, "signature", ""))],
    [("index_value", "group", (0, "rows", -1))], [("index_value", "group", (0, "rows", 2**63))],
    [("index_value", "group", (0, "file", "../Hello/0/0.npy"))], [("index_value", "group", (1, "file", "index.json"))],
    [("index_value", "top", (0, "version", 3))], [("index_delete", "entry", (0, "row"))],
    [("index_delete", "group", (0, "file"))], [("index_delete", "top", (0, "groups"))],
    [("index_rename", "group", (0, 1))], [("index_rename", "entry", (0, 5))],
    [("swap", "row", (0, 1))], [("swap", "row+crc", (0, 1))], [("swap", "entry", (2, 3))],
    [("replace_npy", "fortran_order", None)], [("replace_npy", "middle_value_changed", None)],
    [("replace_npy", "fewer_rows", None)], [("flip", "rows", [(0.5, 1)])], [("flip", "index", [(0.5, 4)])],
    [("truncate", "rows", 0.99)], [("delete", "narrow", None)],
]


@family_settings(25)
@with_examples([dict(damage=case, stream=stream) for case in CACHE_EXAMPLES for stream in (False, True)])
@given(damage=st.lists(CACHE_DAMAGE, min_size=1, max_size=3), stream=st.booleans())
def test_a_damaged_cache_gives_what_the_frames_give_and_is_rewritten(cache_tree, tmp_path, monkeypatch, damage,
                                                                      stream):
    base, truth = cache_tree
    monkeypatch.setattr(cache, "RACY_SECONDS", 0)
    root = fresh_copy(base, tmp_path)
    for kind, target, value in damage:
        event(f"damage: {kind} {target}")
        _damage_cache(root, kind, target, value)
    _check_damaged_cache(root, truth, stream, monkeypatch)


# Where a value of any JSON type goes: a whole entry, a field of one (its signature kept, so the
# value reaches the code that uses it), a group, a field of one, the top-level tables, and entries
# under names that are not sequences of the load.
ILL_TYPED_TARGETS = st.sampled_from(
    ["entry", "entry.group", "entry.row", "entry.crc", "entry.reason_of_unusable", "group", "group.file",
     "group.rows", "entries", "groups", "stray:Hello", "stray:Yes/0/0.npy", "stray:..", "stray:Nope/1",
     "entry-without:group", "entry-without:row", "entry-without:crc", "group-without:file", "group-without:rows"])


def _ill_typed(root, target, position, value):
    def edit(index):
        entries, groups = index["entries"], index["groups"]
        rows = sorted(name for name, entry in entries.items() if "row" in entry)
        if target.startswith(("entry-without:", "group-without:")):  # a key missing (value unused)
            table, key = (entries, target[14:]) if target.startswith("entry") else (groups, target[14:])
            names = rows if table is entries else sorted(groups)
            table[names[position % len(names)]].pop(key)
        elif target == "entry":
            entries[rows[position % len(rows)]] = value
        elif target == "entry.reason_of_unusable":
            entries["Yes/3"]["reason"] = value
        elif target.startswith("entry."):
            entries[rows[position % len(rows)]][target[6:]] = value
        elif target == "group":
            groups[sorted(groups)[position % len(groups)]] = value
        elif target.startswith("group."):
            groups[sorted(groups)[position % len(groups)]][target[6:]] = value
        elif target in ("entries", "groups"):
            index[target] = value
        else:  # a stray name; and one sequence's entry gone, so the load writes the cache back
            entries[target[6:]] = value
            del entries[rows[position % len(rows)]]
    _edit_index(root, edit)


@family_settings(25)
@with_examples([dict(target="entry", position=0, value=5, stream=False),
                 dict(target="entry.reason_of_unusable", position=0, value=5, stream=False),
                 dict(target="entry.group", position=0, value=[1], stream=True),
                 dict(target="stray:Hello", position=0, value={}, stream=False),
                 dict(target="entry-without:group", position=0, value=None, stream=True)])
@given(target=ILL_TYPED_TARGETS, position=st.integers(0, 20), value=JSON_VALUES, stream=st.booleans())
def test_index_entries_of_any_shape_are_a_slower_load_not_a_crash(cache_tree, tmp_path, monkeypatch, target,
                                                                      position, value, stream):
    base, truth = cache_tree
    monkeypatch.setattr(cache, "RACY_SECONDS", 0)
    root = fresh_copy(base, tmp_path)
    _ill_typed(root, target, position, value)
    _check_damaged_cache(root, truth, stream, monkeypatch)


@family_settings(15)
@with_examples([dict(target="usable", position=0, text="x", stream=False),
                 dict(target="unusable", position=0, text="missing frame 13.npy", stream=True)])
@given(target=st.sampled_from(["usable", "unusable"]), position=st.integers(0, 20),
       text=st.text(max_size=40).filter(lambda text: text != "missing frame 12.npy"), stream=st.booleans())
def test_a_cached_reason_is_the_reason_the_frames_give(cache_tree, tmp_path, monkeypatch, target, position, text,
                                                      stream):
    base, truth = cache_tree
    monkeypatch.setattr(cache, "RACY_SECONDS", 0)
    root = fresh_copy(base, tmp_path)

    def edit(index):
        entries = index["entries"]
        usable = sorted(name for name, entry in entries.items() if "row" in entry)
        entries[usable[position % len(usable)] if target == "usable" else "Yes/3"]["reason"] = text
    _edit_index(root, edit)
    _check_damaged_cache(root, truth, stream, monkeypatch, reasons=True)


def test_an_undamaged_copy_of_the_cache_is_believed(cache_tree, tmp_path, monkeypatch):
    """The premise of the family: the copied cache is used as it is (plain and streamed), so each
    damage above really reaches the checks of a believed cache."""
    base, truth = cache_tree
    monkeypatch.setattr(cache, "RACY_SECONDS", 0)
    root = fresh_copy(base, tmp_path)
    reads = _frame_reads(monkeypatch)
    _same_as_truth(data.load_dataset(root, use_cache=False), truth, reasons=True)
    assert len(reads) == 9  # the spy sees every sequence folder (Hello 0-4, Yes 0-3) read from its frames
    for stream in (False, True):
        reads.clear()
        _same_as_truth(data.load_dataset(root, stream=stream), truth, reasons=True)
        assert reads == []
