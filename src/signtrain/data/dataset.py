"""Reading an MP_Data tree: MP_Data/<Action>/<sequence>/<frame>.npy, one (1662,) array a frame.

Every numeric sequence folder of each action is read (not just 0-29). A sequence that cannot be
used (missing or unreadable frames, a frame of another length) is skipped and reported with the
reason, never silently dropped.
"""

import collections
import dataclasses
import os

import numpy as np
from sklearn.model_selection import train_test_split

from signtrain import config
from signtrain.data import cache, names, twins
from signtrain.data.frames import layout_problem, load_sequence

# Files and folders that operating systems and tools leave in data folders; never actions.
STRAY_NAMES = {".DS_Store", "desktop.ini", "Thumbs.db", ".ipynb_checkpoints", "__MACOSX"}


@dataclasses.dataclass
class Dataset:
    X: np.ndarray  # (n, sequence_length, num_features) float32
    y: np.ndarray  # (n,) int label = index into actions
    actions: list
    sequences: list  # (action, sequence folder name) of each row of X
    skipped: list  # [{"action", "sequence", "reason"}]
    notes: list  # things ignored on purpose (stray files, non-numeric folders)
    layout_problem: str = None  # why the frames are not the contract's layout (only with any_layout)
    recordings: list = None  # names of the recordings, when several were given (signtrain.data.recordings)
    recording: np.ndarray = None  # (n,) index into recordings of each row
    _digests: list = dataclasses.field(default=None, repr=False)

    @property
    def num_features(self):
        return int(self.X.shape[2])

    @property
    def digests(self):
        """The sha1 of each row's frames (signtrain.data.twins), computed once."""
        if self._digests is None:
            self._digests = twins.digests(self.X)
        return self._digests

    @property
    def twin_group(self):
        """(n,) the first row with the same frames as each row (signtrain.data.twins)."""
        return twins.groups(self.digests)


def is_ignored(name):
    return name in STRAY_NAMES or name.startswith(".")


def has_sequence_folders(folder):
    return any(name.isdecimal() and os.path.isdir(os.path.join(folder, name)) for name in os.listdir(folder))


def find_actions(data_dir, flag="--data"):
    """Action folder names found in data_dir, sorted. flag: the option that named the folder, for messages."""
    if os.path.isfile(data_dir) and data_dir.lower().endswith(".zip"):
        raise ValueError(
            f"{flag} {data_dir!r} is a zip file. Unzip it first (e.g. `unzip {os.path.basename(data_dir)}`) "
            f"and pass the MP_Data folder inside it."
        )
    if not os.path.isdir(data_dir):
        what = "is a file, not a folder" if os.path.exists(data_dir) else "does not exist"
        raise FileNotFoundError(
            f"data folder {data_dir!r} {what}. Pass {flag} with the folder that holds one "
            f"sub-folder per sign (MP_Data/<Action>/<sequence>/<frame>.npy)."
        )
    if has_sequence_folders(data_dir) and not any(has_sequence_folders(os.path.join(data_dir, name)) for name
                                                  in os.listdir(data_dir) if os.path.isdir(os.path.join(data_dir, name))):
        parent = os.path.dirname(os.path.abspath(data_dir))
        raise ValueError(
            f"{flag} {data_dir!r} looks like one sign's folder (it holds sequence folders 0/, 1/, ...); "
            f"pass its parent, the folder with one sub-folder per sign: {flag} {parent!r}."
        )
    found = sorted(
        name
        for name in os.listdir(data_dir)
        if os.path.isdir(os.path.join(data_dir, name)) and not is_ignored(name)
    )
    clashes = names.same_sign_folders(found)
    if clashes:  # Thank_You/ and "thank you/" would train as two signs that the live app cannot tell apart
        raise ValueError(
            f"{flag} {data_dir!r} holds folders that name one sign: "
            f"{'; '.join(' and '.join(map(repr, group)) for group in clashes)} (names are compared ignoring case, "
            f"spaces, underscores and hyphens). Move the sequences of one into the other (numbering them on) "
            f"and delete it, or rename it if it is another sign."
        )
    # A zip made one level too high unpacks as DIR/MP_Data/<Action>/...; a person's folder may hold MP_Data/
    # beside videos/: say where the data is.
    inner = [os.path.join(data_dir, name) for name in found]
    trees = [folder for folder in inner if any(has_sequence_folders(os.path.join(folder, name))
                                               for name in os.listdir(folder) if os.path.isdir(os.path.join(folder, name)))]
    if trees and not any(has_sequence_folders(folder) for folder in inner):
        what = f"only the folder {found[0]!r}" if len(found) == 1 else f"the folders {found}"
        raise ValueError(
            f"{data_dir!r} holds {what}, and the action folders are inside {os.path.basename(trees[0])!r} "
            f"(MP_Data one level deeper, e.g. from a zip). Use --data {trees[0]!r}."
        )
    return found


def resolve_actions(data_dir, requested=None):
    """The actions to train on, in label order.

    requested (a list of names) wins and must all exist as folders. Otherwise: the spec's 10 in
    the spec's order when the data has exactly them, else the folder names found, sorted.
    """
    found = find_actions(data_dir)
    if requested:
        missing = [name for name in requested if name not in found]
        if missing:
            raise ValueError(
                f"--actions names {missing} but {data_dir!r} has no such folder. "
                f"Folders found: {found}. Fix the spelling (names are case-sensitive) or drop them."
            )
        if len(set(requested)) != len(requested):
            raise ValueError(f"--actions lists a name twice: {list(requested)}")
        return list(requested)
    if not found:
        raise ValueError(
            f"{data_dir!r} holds no action folders. Expected MP_Data/<Action>/<sequence>/<frame>.npy; "
            f"if you unzipped an archive, the MP_Data folder may be one level deeper."
        )
    if set(found) == set(config.SPEC_ACTIONS):
        return list(config.SPEC_ACTIONS)
    return found


def _sequence_folders(action_dir, notes):
    """Numeric sequence folder names of one action, in numeric order."""
    numeric = []
    for name in os.listdir(action_dir):
        path = os.path.join(action_dir, name)
        if name.isdecimal() and os.path.isdir(path):
            numeric.append(name)
        elif is_ignored(name):
            notes.append(f"ignored {path}: a file the operating system or Jupyter left there")
        else:
            notes.append(f"ignored {path}: not a numeric sequence folder")
    return sorted(numeric, key=int)


def _no_usable_sequence(data_dir, actions, skipped, sequence_length, others=()):
    """The message for signs with no usable sequence: the folders with nothing in them, the most
    common reasons sequences were skipped, and how to go on."""
    folders = [os.path.join(data_dir, action) for action in actions]
    empty = [folder for folder in folders if not has_sequence_folders(folder)]
    reasons = collections.Counter(entry["reason"] for entry in skipped if entry["action"] in actions)
    parts = []
    if empty:
        parts.append(f"{', '.join(repr(folder) for folder in empty)} holds no sequence folder (0/, 1/, ...)")
    if reasons:
        parts.append("sequences skipped: " + "; ".join(f"{count} x {reason}"
                                                      for reason, count in reasons.most_common(3)))
    if not skipped and not empty:
        parts.append(f"each sequence folder needs frames 0.npy..{sequence_length - 1}.npy")
    go_on = (f"Record them, remove the folder, or leave them out with --actions {','.join(others)}" if others else
             "Fix the frames (see `signtrain check`) or record again")
    return f"no usable sequence for {list(actions)} in {data_dir!r}: {'; '.join(parts)}. {go_on}."


def load_dataset(data_dir, actions=None, sequence_length=config.SEQUENCE_LENGTH, any_layout=False, use_cache=True,
                 stream=False):
    """Read every usable sequence of the given actions (default: resolve_actions).

    Frames of another layout than the data contract are refused (ValueError) unless any_layout.
    stream: for data bigger than memory. The sequences are packed into the cache beside the data
    (always, whatever use_cache says) and X is a read-only memory map of it (rows paged in when used).
    """
    actions = resolve_actions(data_dir, actions)
    notes, skipped, arrays, labels, sequences = [], [], [], [], []
    found = [(label, action, name) for label, action in enumerate(actions)
             for name in _sequence_folders(os.path.join(data_dir, action), notes)]
    # Read in parallel; unchanged sequences come from the cache beside the data (signtrain.data.cache).
    folders = [os.path.join(data_dir, action, name) for _, action, name in found]
    if stream:  # (group, row) in the cache for each usable sequence
        packed, results = cache.pack(data_dir, folders, load_sequence, sequence_length)
    else:
        results = cache.load_sequences(data_dir, folders, load_sequence, sequence_length, use_cache=use_cache)
    for (label, action, name), result in zip(found, results):
        if isinstance(result, str):
            skipped.append({"action": action, "sequence": name, "reason": result})
            continue
        arrays.append(result)
        labels.append(label)
        sequences.append((action, name))

    if not arrays:
        raise ValueError(_no_usable_sequence(data_dir, actions, skipped, sequence_length))
    # The frame length the data says (1662 for the contract); sequences of another length are skipped.
    width = lambda array: int(array[0].split("x")[-1]) if stream else array.shape[1]  # noqa: E731
    lengths = collections.Counter(width(array) for array in arrays)
    num_features = lengths.most_common(1)[0][0]
    keep = []
    for index, array in enumerate(arrays):
        if width(array) == num_features:
            keep.append(index)
        else:
            action, name = sequences[index]
            skipped.append(
                {
                    "action": action,
                    "sequence": name,
                    "reason": f"frames have {width(array)} values, the rest of the data {num_features}",
                }
            )
    if stream:  # the kept sequences are the rows of one group of this pack's own files, in this order
        X = packed[arrays[keep[0]][0]]
        assert [arrays[i][1] for i in keep] == list(range(len(X))), "the pack's rows are not the sequences' order"
    else:
        X = np.stack([arrays[i] for i in keep])
    y = np.array([labels[i] for i in keep], dtype=np.int64)
    empty = [action for i, action in enumerate(actions) if not np.any(y == i)]
    if empty:
        raise ValueError(_no_usable_sequence(data_dir, empty, skipped, sequence_length, others=[
            action for action in actions if action not in empty]))
    action, name = sequences[keep[0]]
    problem = layout_problem(X, os.path.join(data_dir, action, name, "0.npy"))
    if problem and not any_layout:
        raise ValueError(problem)
    return Dataset(
        X=X,
        y=y,
        actions=list(actions),
        sequences=[sequences[i] for i in keep],
        skipped=skipped,
        notes=notes,
        layout_problem=problem,
    )


def write_tree(out_dir, X, row_actions, row_sequences):
    """Write arrays out as out_dir/<action>/<sequence>/<frame>.npy, float64 as recording scripts do."""
    for sequence, action, name in zip(X, row_actions, row_sequences):
        folder = os.path.join(out_dir, action, str(name))
        os.makedirs(folder)
        for frame_index, frame in enumerate(sequence):
            np.save(os.path.join(folder, f"{frame_index}.npy"), np.asarray(frame, dtype=np.float64))
    return out_dir


@dataclasses.dataclass(frozen=True)
class Split:
    """The rows of one training, decided once: `train` (in training order), `validation` (the rows the
    spec's validation_split=0.15 holds out: the training rows' last 15%), `test` (scored at the end)."""
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray

    @classmethod
    def of(cls, training_rows, test_rows):
        rows = np.asarray(training_rows, dtype=np.int64)
        cut = fit_rows(len(rows))
        return cls(rows[:cut], rows[cut:], np.asarray(test_rows, dtype=np.int64))

    @property
    def training(self):
        """train then validation: the spec's X_train, as model.fit(..., validation_split=0.15) is given it."""
        return np.concatenate([self.train, self.validation])


def fit_rows(n):
    """Rows of n training rows that fit trains on: Keras' validation_split keeps the first floor(n * 0.85)."""
    return int(np.floor(n * (1 - config.VALIDATION_SPLIT)))


def one_hot(y, num_classes):
    """Same as keras.utils.to_categorical, without importing TensorFlow for it."""
    return np.eye(num_classes, dtype=np.float32)[y]


def split_indices(y, seed=config.DEFAULT_SEED, test_size=config.TEST_SIZE):
    """Row indices of the spec's 90/10 stratified split.

    The spec calls train_test_split(X, y_onehot, stratify=y_onehot): stratifying on the one-hot
    rows orders the classes differently from integer labels, which changes which rows land in
    the test set. We do exactly what the spec does so that the notebook and the CLI agree.
    """
    num_classes = int(np.max(y)) + 1
    counts = np.bincount(y, minlength=num_classes)
    n_test = int(np.ceil(test_size * len(y)))
    if counts.min() < 2 or n_test < num_classes:
        smallest = int(counts.min())
        raise ValueError(
            f"too few sequences for a stratified 90/10 split: {len(y)} sequences, {num_classes} "
            f"actions, the smallest class has {smallest}. The test split needs at least one sequence "
            f"per action ({num_classes} of {len(y)} at 10% means at least {num_classes * 10} in all) "
            f"and each action at least 2. Record more sequences or train on fewer actions."
        )
    y_onehot = one_hot(y, num_classes)
    train_idx, test_idx = train_test_split(
        np.arange(len(y)), test_size=test_size, random_state=seed, stratify=y_onehot
    )
    return train_idx, test_idx
