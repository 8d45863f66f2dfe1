"""One sequence folder read: its frame files (fast, and with the real cause when a file is not a
frame), and the check that frames follow the data contract's layout (pose 33x4, face 468x3, left
hand 21x3, right hand 21x3) rather than another recording script's.
"""

import io
import itertools
import os
import zipfile

import numpy as np

from signtrain import config

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
                   if name.endswith(".npy") and name[:-4].isdecimal() and int(name[:-4]) >= sequence_length)
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
    beyond = beyond_camera(sequence)
    if beyond:
        return f"frame {beyond[0]}.npy has a value of {beyond[1]:.3g}, {BEYOND_CAMERA}: check the recording script"
    return sequence


BEYOND_CAMERA = (f"far beyond what MediaPipe gives (keypoints are image fractions near 0-1; signtrain takes "
                 f"|value| <= {config.MAX_ABS_VALUE:g})")


def beyond_camera(sequence):
    """(frame, its largest |value|) of the first frame beyond config.MAX_ABS_VALUE, or None."""
    if sequence.size == 0:  # frames of no values: a width of their own, left to the width check
        return None
    largest = np.abs(sequence).max(axis=1)
    if largest.max() <= config.MAX_ABS_VALUE:
        return None
    frame = int(np.argmax(largest > config.MAX_ABS_VALUE))
    return frame, float(largest[frame])


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
