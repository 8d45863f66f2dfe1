"""Why a person fails: what a recording looks like (its Profile) against the training data's, and
the differences that matter, each with its fix.

A model scored on someone it never saw fails mostly for reasons that are in the keypoints, not in
the model: MediaPipe lost the hands (the strangers a relative-features model failed on had no hand
in 26% and 59% of frames, the training recordings in 1-19%: bench/results/real_people.md), the
signer sits much closer or farther, off to a side, or signs at another pace. `train` stores the
training rows' profile in metrics.json (`data_profile`); `evaluate`, `--test-data` and
`cv --by recording` compare the scored recording with it and print what differs.
"""

import dataclasses

import numpy as np

from signtrain import config

CHUNK_ROWS = 256  # X may be a memory map (train --stream)
# A hand "moves" in a frame when its wrist moved more than this share of the shoulder width since
# the frame before (MediaPipe's jitter on a still hand is ~1% of it).
MOTION = 0.05
# What counts as a difference worth a line: missing shares this much higher (and 1.5x), a size
# ratio beyond 1.5x, a place this far (share of the image), a share of moving frames this different.
MORE_MISSING, SIZE_RATIO, PLACE_SHIFT, PACE_CHANGE = 0.10, 1.5, 0.15, 0.20


@dataclasses.dataclass
class Profile:
    """A recording's frames, summarised: shares of frames, sizes and places in image units."""
    frames: int
    no_pose: float
    no_hand: float  # neither hand seen
    no_signing_hand: float  # the hand seen more often (the one that signs; either side) not seen
    shoulder_width: float  # median distance between the shoulders, in image widths (nan: no pose seen)
    center_x: float  # median midpoint of the shoulders in the image
    center_y: float
    moving: float  # share of the frames where a hand is seen twice running in which it moved (MOTION); nan: none

    def to_json(self):
        return {key: (None if isinstance(value, float) and np.isnan(value) else value)
                for key, value in dataclasses.asdict(self).items()}

    @classmethod
    def from_json(cls, values):
        """The profile stored in a run's metrics.json; None when the run has none (older, or malformed)."""
        names = [field.name for field in dataclasses.fields(cls)]
        if not isinstance(values, dict) or set(values) != set(names):
            return None
        if not all(value is None or isinstance(value, (int, float)) for value in values.values()):
            return None
        return cls(**{name: float("nan") if values[name] is None else values[name] for name in names})


def _chunk_counts(chunk):
    """Sums over one chunk of sequences: frames, parts missing, widths and centres, moving frames."""
    def missing(part):
        return np.all(chunk[..., config.block_slice(part)] == 0, axis=-1)  # (rows, steps)

    pose = chunk[..., config.block_slice("pose")].reshape(*chunk.shape[:2], 33, 4)
    seen = ~missing("pose")
    shoulders = pose[..., (11, 12), :2]  # (rows, steps, 2, xy)
    width = np.abs(shoulders[..., 0, 0] - shoulders[..., 1, 0])
    center = shoulders.mean(axis=-2)
    moving, measurable = np.zeros(chunk.shape[:2], bool), np.zeros(chunk.shape[:2], bool)
    for hand in ("left_hand", "right_hand"):
        wrist = chunk[..., config.block_slice(hand)][..., :2]
        both_seen = ~missing(hand)[:, 1:] & ~missing(hand)[:, :-1] & seen[:, 1:] & (width[:, 1:] > 0)
        step = np.linalg.norm(np.diff(wrist, axis=1), axis=-1)
        with np.errstate(all="ignore"):
            moving[:, 1:] |= both_seen & (step > MOTION * width[:, 1:])
        measurable[:, 1:] |= both_seen  # a lost hand is not a still hand: pace only where it can be seen
    left, right = missing("left_hand"), missing("right_hand")
    # Per sequence, the hand seen in more frames signs (a left-handed signer's left hand).
    signing = np.where((left.sum(axis=1) <= right.sum(axis=1))[:, None], left, right)
    return (missing("pose").sum(), (left & right).sum(), signing.sum(), moving.sum(), measurable.sum(), width[seen],
            center[seen])


def profile(X, rows=None):
    """The Profile of sequences X[rows] (rows, steps, 1662; all of X without rows), read a chunk at a
    time; None for another layout (--any-layout) or no rows."""
    rows = np.arange(len(X)) if rows is None else np.sort(np.asarray(rows))
    if len(rows) == 0 or X.shape[-1] != config.NUM_FEATURES:
        return None
    totals, widths, centers = np.zeros(5), [], []
    for begin in range(0, len(rows), CHUNK_ROWS):
        *counts, width, center = _chunk_counts(np.asarray(X[rows[begin:begin + CHUNK_ROWS]], np.float64))
        totals += counts
        widths.append(width)
        centers.append(center)
    frames = int(len(rows) * X.shape[1])
    width, center = np.concatenate(widths), np.concatenate(centers)
    median = (lambda values: float(np.median(values)) if len(values) else float("nan"))  # noqa: E731
    return Profile(frames, *(float(value / frames) for value in totals[:3]), median(width),
                   median(center[:, 0]) if len(center) else float("nan"),
                   median(center[:, 1]) if len(center) else float("nan"),
                   float(totals[3] / totals[4]) if totals[4] else float("nan"))


def differences(scored, trained):
    """The differences between a scored recording's profile and the training data's that can make
    a model fail, each one line with the fix; [] when nothing stands out (or a profile is missing)."""
    if scored is None or trained is None:
        return []
    lines = []
    for label, name in (("signing hand", "no_signing_hand"), ("hands (both)", "no_hand"), ("body (pose)", "no_pose")):
        here, there = getattr(scored, name), getattr(trained, name)
        if here - there >= MORE_MISSING and here >= 1.5 * there:
            fix = ("light the hands, keep them inside the image and not too far from the camera, a plain background; "
                   "or train with --hand-dropout (part of --recipe people)" if "hand" in label
                   else "the upper body must be in the image")
            lines.append(f"the {label} missing in {here:.0%} of this recording's frames against {there:.0%} in "
                         f"training: MediaPipe lost {'them' if 'both' in label else 'it'}. Fix: {fix}")
    ratio = scored.shoulder_width / trained.shoulder_width if trained.shoulder_width > 0 else float("nan")
    if np.isfinite(ratio) and ratio > 0 and not 1 / SIZE_RATIO <= ratio <= SIZE_RATIO:
        lines.append(f"the signer looks {ratio:.1f}x as wide as in training ({'closer to' if ratio > 1 else 'farther from'}"
                     f" the camera). Fix: record at the training distance, or train with --features relative "
                     f"(positions relative to the shoulders)")
    shift = np.hypot(scored.center_x - trained.center_x, scored.center_y - trained.center_y)
    if np.isfinite(shift) and shift > PLACE_SHIFT:
        lines.append(f"the signer sits {shift:.0%} of the image away from where the training signers sat. Fix: "
                     f"centre the signer, or train with --features relative")
    if abs(scored.moving - trained.moving) > PACE_CHANGE:  # False when either is nan
        lines.append(f"the hands move in {scored.moving:.0%} of this recording's frames against {trained.moving:.0%} "
                     f"in training ({'faster or more' if scored.moving > trained.moving else 'slower or held'} signing). "
                     f"Fix: sign at the pace of the training recordings, or record this person too")
    return lines


def failing_signs(recall, threshold=0.5):
    """The signs the model gets wrong more often than right on the scored recording."""
    return [f"{sign} ({value:.0%})" for sign, value in recall.items() if value is not None and value < threshold]
