"""Reading an MP_Data tree: MP_Data/<Action>/<sequence>/<frame>.npy, one (1662,) array a frame.

Every numeric sequence folder of each action is read (not just 0-29). A sequence that cannot be
used (missing or unreadable frames, a frame of another length) is skipped and reported with the
reason, never silently dropped.
"""

import collections
import dataclasses
import io
import itertools
import os
import zipfile

import numpy as np
from sklearn.model_selection import train_test_split

from signtrain import cache, cachefolder, config

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
    recordings: list = None  # names of the recordings, when several were given (signtrain.recordings)
    recording: np.ndarray = None  # (n,) index into recordings of each row

    @property
    def num_features(self):
        return int(self.X.shape[2])


def _is_ignored(name):
    return name in STRAY_NAMES or name.startswith(".")


def _has_sequence_folders(folder):
    return any(name.isdigit() and os.path.isdir(os.path.join(folder, name)) for name in os.listdir(folder))


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
    if _has_sequence_folders(data_dir) and not any(
            _has_sequence_folders(os.path.join(data_dir, name)) for name in os.listdir(data_dir)
            if os.path.isdir(os.path.join(data_dir, name))):
        parent = os.path.dirname(os.path.abspath(data_dir))
        raise ValueError(
            f"{flag} {data_dir!r} looks like one sign's folder (it holds sequence folders 0/, 1/, ...); "
            f"pass its parent, the folder with one sub-folder per sign: {flag} {parent!r}."
        )
    found = sorted(
        name
        for name in os.listdir(data_dir)
        if os.path.isdir(os.path.join(data_dir, name)) and not _is_ignored(name)
    )
    # A zip made one level too high unpacks as DIR/MP_Data/<Action>/...: say where the data is.
    if len(found) == 1 and not _has_sequence_folders(os.path.join(data_dir, found[0])):
        inner = os.path.join(data_dir, found[0])
        if any(_has_sequence_folders(os.path.join(inner, name)) for name in os.listdir(inner)
               if os.path.isdir(os.path.join(inner, name))):
            raise ValueError(
                f"{data_dir!r} holds only the folder {found[0]!r}, and the action folders are inside it "
                f"(the zip had MP_Data one level deeper). Use --data {inner!r}."
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
        if name.isdigit() and os.path.isdir(path):
            numeric.append(name)
        elif _is_ignored(name):
            notes.append(f"ignored {path}: a file the operating system or Jupyter left there")
        else:
            notes.append(f"ignored {path}: not a numeric sequence folder")
    return sorted(numeric, key=int)


# Header bytes of .npy files that np.load has already parsed into a plain 1-D numeric array:
# {header: (dtype, count)}. Recording scripts write thousands of frames with the same header;
# parsing it once and reading the rest as raw numbers is ~10x faster than np.load on each file.
_KNOWN_HEADERS = {}
_MAX_KNOWN_HEADERS = 64


def _read_npy(path):
    """np.load(path, allow_pickle=False), fast for a header seen before."""
    with open(path, "rb") as handle:
        raw = handle.read()
    end = None
    if raw[:6] == b"\x93NUMPY" and len(raw) >= 12:
        size_bytes = 2 if raw[6] == 1 else 4  # format 1.0: 2-byte header length; 2.0 and 3.0: 4
        end = 8 + size_bytes + int.from_bytes(raw[8:8 + size_bytes], "little")
        known = _KNOWN_HEADERS.get(raw[:end])
        if known is not None and len(raw) == end + known[0].itemsize * known[1]:
            return np.frombuffer(raw, dtype=known[0], count=known[1], offset=end)
    frame = np.load(io.BytesIO(raw), allow_pickle=False)  # anything else: numpy's own reader and errors
    if (end is not None and frame.ndim == 1 and frame.dtype.kind in "iuf" and frame.dtype.isnative
            and len(raw) == end + frame.nbytes and len(_KNOWN_HEADERS) < _MAX_KNOWN_HEADERS):
        _KNOWN_HEADERS[raw[:end]] = (frame.dtype, frame.size)
    return frame


def _npy_problem(path, error):
    """Why np.load refused a frame, in the user's terms (numpy takes any file that is not .npy or
    .npz for pickled data and suggests allow_pickle=True: wrong cause, unsafe advice)."""
    with open(path, "rb") as handle:
        head = handle.read(8)
    if not head.startswith(b"\x93NUMPY") and not head.startswith(b"PK"):
        return (f"not an .npy file: it starts with {head!r}, not numpy's header; write each frame with "
                f"np.save(path, keypoints)")
    if "pickle" in str(error):
        return ("it holds Python objects (pickled data), not numbers; signtrain never unpickles a frame. Save the "
                "keypoints as a number array: np.save(path, np.asarray(keypoints, dtype=np.float64))")
    return str(error)


def _load_frame(path):
    """One frame as a 1-D numeric array, or a reason string why it cannot be used.

    Values are checked for NaN and inf by load_sequence, for the whole sequence at once.
    """
    try:
        frame = _read_npy(path)
    except FileNotFoundError:
        return "missing frame " + os.path.basename(path)
    except ValueError as error:  # object arrays need pickle: refuse, never unpickle
        return f"unreadable frame {os.path.basename(path)} ({_npy_problem(path, error)})"
    except (OSError, EOFError, zipfile.BadZipFile) as error:
        return f"unreadable frame {os.path.basename(path)} ({error.__class__.__name__}: {error})"
    if not isinstance(frame, np.ndarray):  # an .npz archive saved under a frame's name
        return f"frame {os.path.basename(path)} is an .npz archive, expected one array (np.save)"
    if frame.ndim != 1:
        return f"frame {os.path.basename(path)} has shape {frame.shape}, expected a flat array"
    if frame.dtype.kind not in "iuf":  # complex, strings, booleans, dates: not keypoints
        return f"frame {os.path.basename(path)} has dtype {frame.dtype}, expected numbers"
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
    extra = sorted(int(name[:-4]) for name in os.listdir(sequence_dir)
                   if name.endswith(".npy") and name[:-4].isdigit() and int(name[:-4]) >= sequence_length)
    if extra:
        return (f"{len(extra)} extra frames ({extra[0]}.npy..{extra[-1]}.npy): a sequence is exactly "
                f"{sequence_length} frames, 0.npy..{sequence_length - 1}.npy; which {sequence_length} are the sign is unclear")
    sequence = np.stack(frames)
    finite = np.isfinite(sequence).all(axis=1)
    if not finite.all():
        return f"frame {int(np.argmin(finite))}.npy contains NaN or inf"
    with np.errstate(over="ignore"):
        sequence = sequence.astype(np.float32)
    finite = np.isfinite(sequence).all(axis=1)  # a float64 value beyond float32's range is inf now
    if not finite.all():
        return f"frame {int(np.argmin(finite))}.npy has a value beyond float32's range (keypoints are 0-1)"
    return sequence


# Frame widths of layouts that public recording scripts produce, for the error message.
KNOWN_WIDTHS = {
    258: "pose + left hand + right hand, no face (33x4 + 21x3 + 21x3)",
    225: "pose without visibility + both hands (33x3 + 21x3 + 21x3)",
    126: "both hands only (21x3 + 21x3)",
    63: "one hand only (21x3)",
    1536: "pose + face, no hands",
    1404: "face only",
    1599: "pose + face + one hand",
}
_BLOCK_SIZES = {name: stop - start for name, start, stop in config.BLOCKS}


def _layout_score(frames, order):
    """How well frames (n, 1662) fit the blocks in this order, 0..3 (3: every check passes).

    MediaPipe leaves fingerprints: pose visibility lies in [0, 1]; a hand's wrist z is exactly 0
    (hand landmarks are relative to the wrist); each hand's wrist sits next to the pose wrist of
    the same side (pose 15 is the left wrist, 16 the right).
    """
    offsets, start = {}, 0
    for name in order:
        offsets[name] = slice(start, start + _BLOCK_SIZES[name])
        start += _BLOCK_SIZES[name]
    pose = frames[:, offsets["pose"]].reshape(-1, 33, 4)
    seen = np.any(pose != 0, axis=(1, 2))
    visibility = pose[seen][:, :, 3]
    score = float(np.mean(np.all((visibility >= 0) & (visibility <= 1), axis=1))) if seen.any() else 0.0
    wrist_z, same_side = [], []
    for hand_name, own, other in (("left_hand", 15, 16), ("right_hand", 16, 15)):
        hand = frames[:, offsets[hand_name]].reshape(-1, 21, 3)
        detected = np.any(hand != 0, axis=(1, 2)) & seen
        if detected.any():
            wrist = hand[detected][:, 0]
            wrist_z.append(np.mean(np.abs(wrist[:, 2]) < 1e-6))
            near_own = np.linalg.norm(wrist[:, :2] - pose[detected][:, own, :2], axis=1)
            near_other = np.linalg.norm(wrist[:, :2] - pose[detected][:, other, :2], axis=1)
            same_side.append(np.mean(near_own <= near_other))
    score += float(np.mean(wrist_z)) if wrist_z else 0.5
    score += float(np.mean(same_side)) if same_side else 0.5
    return score


def layout_problem(X, example):
    """None when the frames follow the data contract, else a message naming the file and the fix."""
    width = X.shape[-1]
    fix = ("The live app feeds [pose 33x4, face 468x3, left hand 21x3, right hand 21x3] = 1662 values per frame; "
           "record with that extract_keypoints, or pass --any-layout to train a model only your own app can feed.")
    if width != config.NUM_FEATURES:
        known = KNOWN_WIDTHS.get(width, "not a layout signtrain knows")
        return f"frames have {width} values ({known}), e.g. {example}. {fix}"
    frames = X.reshape(-1, width)
    frames = frames[:: max(1, len(frames) // 3000)]  # a sample is enough and keeps this fast
    scores = {order: _layout_score(frames, order) for order in itertools.permutations(_BLOCK_SIZES)}
    contract = tuple(_BLOCK_SIZES)
    best = max(scores, key=scores.get)
    if scores[best] - scores[contract] > 0.3:
        return (f"frames have 1662 values but look like the blocks are in the order {', '.join(best)} "
                f"(fit {scores[best]:.2f}/3 against {scores[contract]:.2f}/3 for the contract's "
                f"{', '.join(contract)}), e.g. {example}. A model trained on them would learn nothing the "
                f"live app can use. Re-record, or reorder each frame with np.concatenate in the contract's "
                f"order. {fix.split('; ')[0]}.")
    return None


def _no_usable_sequence(data_dir, actions, skipped, sequence_length, others=()):
    """The message for signs with no usable sequence: the folders with nothing in them, the most
    common reasons sequences were skipped, and how to go on."""
    folders = [os.path.join(data_dir, action) for action in actions]
    empty = [folder for folder in folders if not _has_sequence_folders(folder)]
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
    # Read in parallel; unchanged sequences come from the cache beside the data (signtrain.cache).
    folders = [os.path.join(data_dir, action, name) for _, action, name in found]
    if stream:  # (group, row) in the cache for each usable sequence
        cache_path, results = cache.pack(data_dir, folders, load_sequence, sequence_length)
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
    if stream:  # the kept sequences are the rows of one group, packed in this order
        X = cachefolder.open_group(cache_path, arrays[keep[0]][0])
        if [arrays[i][1] for i in keep] != list(range(len(X))):  # another process packed it meanwhile
            raise ValueError(f"{cache_path} changed while it was read (another signtrain packing the same "
                             f"folder?); run again once that one has finished")
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
