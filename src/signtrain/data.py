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

    @property
    def num_features(self):
        return int(self.X.shape[2])

    def counts(self):
        """Usable sequences per action, in label order."""
        return {action: int(np.sum(self.y == i)) for i, action in enumerate(self.actions)}


def _is_ignored(name):
    return name in STRAY_NAMES or name.startswith(".")


def find_actions(data_dir):
    """Action folder names found in data_dir, sorted."""
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(
            f"data folder {data_dir!r} does not exist. Pass --data with the folder that holds one "
            f"sub-folder per sign (MP_Data/<Action>/<sequence>/<frame>.npy)."
        )
    return sorted(
        name
        for name in os.listdir(data_dir)
        if os.path.isdir(os.path.join(data_dir, name)) and not _is_ignored(name)
    )


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
        if name.isdigit() and os.path.isdir(path):
            numeric.append(name)
        elif not _is_ignored(name):
            notes.append(f"ignored {path}: not a numeric sequence folder")
    return sorted(numeric, key=int)


def _load_frame(path):
    """One frame as a 1-D float array, or a reason string why it cannot be used."""
    if not os.path.exists(path):
        return "missing frame " + os.path.basename(path)
    try:
        frame = np.load(path, allow_pickle=False)
    except ValueError as error:  # object arrays need pickle: refuse, never unpickle
        return f"unreadable frame {os.path.basename(path)} ({error})"
    except (OSError, EOFError) as error:
        return f"unreadable frame {os.path.basename(path)} ({error.__class__.__name__}: {error})"
    if frame.ndim != 1:
        return f"frame {os.path.basename(path)} has shape {frame.shape}, expected a flat array"
    if not np.issubdtype(frame.dtype, np.number) or np.issubdtype(frame.dtype, np.complexfloating):
        return f"frame {os.path.basename(path)} has dtype {frame.dtype}, expected numbers"
    if not np.all(np.isfinite(frame)):
        return f"frame {os.path.basename(path)} contains NaN or inf"
    return frame


def load_sequence(sequence_dir, sequence_length=config.SEQUENCE_LENGTH):
    """The frames 0..sequence_length-1 of one sequence as a (length, features) array, or a reason."""
    frames = []
    for index in range(sequence_length):
        frame = _load_frame(os.path.join(sequence_dir, f"{index}.npy"))
        if isinstance(frame, str):
            return frame
        if frames and frame.shape != frames[0].shape:
            return f"frame {index}.npy has {frame.shape[0]} values, frame 0.npy has {frames[0].shape[0]}"
        frames.append(frame)
    return np.stack(frames).astype(np.float32)


def load_dataset(data_dir, actions=None, sequence_length=config.SEQUENCE_LENGTH):
    """Read every usable sequence of the given actions (default: resolve_actions)."""
    actions = resolve_actions(data_dir, actions)
    notes, skipped, arrays, labels, sequences = [], [], [], [], []
    for label, action in enumerate(actions):
        action_dir = os.path.join(data_dir, action)
        for name in _sequence_folders(action_dir, notes):
            result = load_sequence(os.path.join(action_dir, name), sequence_length)
            if isinstance(result, str):
                skipped.append({"action": action, "sequence": name, "reason": result})
                continue
            arrays.append(result)
            labels.append(label)
            sequences.append((action, name))

    if not arrays:
        raise ValueError(
            f"no usable sequence in {data_dir!r} for actions {actions}. "
            f"Each sequence folder needs frames 0.npy..{sequence_length - 1}.npy."
        )
    # The frame length the data says (1662 for the contract); sequences of another length are skipped.
    lengths = collections.Counter(array.shape[1] for array in arrays)
    num_features = lengths.most_common(1)[0][0]
    keep = []
    for index, array in enumerate(arrays):
        if array.shape[1] == num_features:
            keep.append(index)
        else:
            action, name = sequences[index]
            skipped.append(
                {
                    "action": action,
                    "sequence": name,
                    "reason": f"frames have {array.shape[1]} values, the rest of the data {num_features}",
                }
            )
    X = np.stack([arrays[i] for i in keep])
    y = np.array([labels[i] for i in keep], dtype=np.int64)
    empty = [action for i, action in enumerate(actions) if not np.any(y == i)]
    if empty:
        raise ValueError(
            f"no usable sequence for {empty} in {data_dir!r}; see the skipped sequences: "
            f"{[s for s in skipped if s['action'] in empty][:5]}. Re-record them or leave them out "
            f"with --actions."
        )
    return Dataset(
        X=X,
        y=y,
        actions=list(actions),
        sequences=[sequences[i] for i in keep],
        skipped=skipped,
        notes=notes,
    )


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
