"""A synthetic signer: MP_Data trees in the exact data contract, made here, never downloaded.

Each frame is what MediaPipe Holistic would report for a person facing the camera: 33 pose
landmarks (x, y, z, visibility), a 468-point face mesh and two 21-point hands, in image
coordinates (x to the right, y down, 0..1), concatenated pose, face, left hand, right hand.
Like a webcam recording that is not mirrored, the person's right side is on the image's left.

Every sign is a motion pattern of the hands relative to the body (a wave beside the head for
Hello, a flat hand from the chin outwards for Thank_You, ...). Each sequence varies the signer's
position, size, speed, timing and amplitude, adds landmark jitter, and drops hands for whole
stretches of frames (zeros), as real recordings do. Please and Sorry share their motion and
differ only in the hand shape, so the set is learnable but not trivial.

The signs themselves are in signtrain.data.synth_signs. Geometry is built in "body units": origin
between the shoulders, shoulder width 1, x towards the image's right, y down.
"""

import os
import shutil

import numpy as np

from signtrain import config
from signtrain.data import dataset as data
from signtrain.data.synth_signs import HANDSHAPES, SIGNS, still

# --- the body at rest ---------------------------------------------------------------------

# Pose landmarks 0-12 and 23-32 in body units (hands and arms are placed per frame).
_POSE_FIXED = {
    0: (0.0, -0.78),  # nose
    1: (0.05, -0.88), 2: (0.09, -0.88), 3: (0.13, -0.88),  # left eye inner, eye, outer
    4: (-0.05, -0.88), 5: (-0.09, -0.88), 6: (-0.13, -0.88),  # right eye
    7: (0.2, -0.84), 8: (-0.2, -0.84),  # ears
    9: (0.06, -0.67), 10: (-0.06, -0.67),  # mouth
    11: (0.5, 0.0), 12: (-0.5, 0.0),  # shoulders (left is on the image's right)
    23: (0.33, 1.3), 24: (-0.33, 1.3),  # hips
    25: (0.33, 2.3), 26: (-0.33, 2.3),  # knees
    27: (0.33, 3.2), 28: (-0.33, 3.2),  # ankles
    29: (0.36, 3.3), 30: (-0.36, 3.3),  # heels
    31: (0.3, 3.4), 32: (-0.3, 3.4),  # foot index
}
_FACE_CENTRE = np.array([0.0, -0.76])
_FACE_HALF_AXES = np.array([0.24, 0.32])

# A right hand, palm to the camera, fingers up, in units of hand length (wrist to middle tip).
_HAND_TEMPLATE = np.array(
    [
        (0.0, 0.0),
        (0.12, -0.08), (0.22, -0.18), (0.3, -0.28), (0.36, -0.36),  # thumb
        (0.1, -0.45), (0.11, -0.62), (0.115, -0.72), (0.12, -0.8),  # index
        (0.0, -0.47), (0.0, -0.66), (0.0, -0.77), (0.0, -0.86),  # middle
        (-0.09, -0.44), (-0.1, -0.6), (-0.105, -0.7), (-0.11, -0.78),  # ring
        (-0.17, -0.38), (-0.19, -0.5), (-0.2, -0.57), (-0.21, -0.64),  # pinky
    ]
)
_FINGERS = {"thumb": range(1, 5), "index": range(5, 9), "middle": range(9, 13),
            "ring": range(13, 17), "pinky": range(17, 21)}
_PALM = np.array([0.0, -0.3])
HAND_LENGTH = 0.45  # in shoulder widths

# How much one take differs from the next (uniform ranges). Wider ranges make a harder data set.
VARIATION = {
    "centre_x": (0.45, 0.55),  # signer's position in the image
    "centre_y": (0.6, 0.72),
    "scale": (0.3, 0.38),  # shoulder width in image widths: distance to the camera
    "speed": (0.8, 1.2),
    "phase": (-0.12, 0.12),
    "pace": (0.8, 1.25),  # exponent of an uneven time warp
    "amplitude": (0.8, 1.2),
    "jitter": (0.002, 0.006),  # landmark noise, image units
    "hand_dropout": (0.0, 0.3),  # share of frames where the dominant hand is not detected
}


def _face_template():
    """468 points filling an ellipse, with z bulging towards the camera at the nose."""
    rng = np.random.default_rng(468)
    radius = np.sqrt(rng.uniform(0, 1, config.FACE_LANDMARKS))
    angle = rng.uniform(0, 2 * np.pi, config.FACE_LANDMARKS)
    xy = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1) * _FACE_HALF_AXES
    z = -0.12 * (1 - radius**2) + 0.04
    return np.concatenate([xy + _FACE_CENTRE, z[:, None]], axis=1)


_FACE = _face_template()


def _hand_points(curls, rotation, mirror):
    """(T, 21, 3) hand landmarks relative to the wrist, in hand lengths."""
    curls = np.asarray(curls, float)
    frames = curls.shape[0]
    points = np.repeat(_HAND_TEMPLATE[None], frames, axis=0).copy()
    z = np.zeros((frames, 21))
    for finger_index, joints in enumerate(_FINGERS.values()):
        curl = curls[:, finger_index][:, None, None]
        joints = list(joints)
        base = _HAND_TEMPLATE[joints[0]]
        tips = _HAND_TEMPLATE[joints[1:]]
        target = _PALM + (base - _PALM) * 0.4  # folded joints end up over the palm
        points[:, joints[1:]] = tips[None] * (1 - curl) + target[None, None] * curl
        z[:, joints[1:]] = -0.15 * curl[:, :, 0] - 0.02 * np.arange(1, 4)[None]
    z[:, 1:] -= 0.03
    if mirror:
        points[..., 0] *= -1
    cos, sin = np.cos(rotation)[:, None], np.sin(rotation)[:, None]
    x = points[..., 0] * cos - points[..., 1] * sin
    y = points[..., 0] * sin + points[..., 1] * cos
    return np.stack([x, y, z], axis=-1)


def _curls(shape, frames):
    if isinstance(shape, str):
        return np.repeat(np.array(HANDSHAPES[shape], float)[None], frames, axis=0)
    return np.asarray(shape, float)


def _dropouts(rng, frames, rate):
    """Frames where a hand is not detected: a few contiguous stretches, about `rate` of them."""
    missing = np.zeros(frames, bool)
    while missing.mean() < rate:
        start = rng.integers(0, frames)
        missing[start : start + rng.integers(2, 8)] = True
    return missing


def synth_sequence(sign, rng, frames=config.SEQUENCE_LENGTH, left_handed=False):
    """One sequence of one sign: a (frames, 1662) float64 array."""
    if sign not in SIGNS:
        raise ValueError(f"the synthetic signer knows {list(SIGNS)}, not {sign!r}")
    # Who, where, how fast: a different take every sequence.
    vary = lambda name: rng.uniform(*VARIATION[name])  # noqa: E731
    centre = np.array([vary("centre_x"), vary("centre_y")])
    scale = vary("scale")
    speed, phase = vary("speed"), vary("phase")
    t = np.clip(np.linspace(0, 1, frames) * speed + phase, 0, 1) ** vary("pace")
    amplitude = vary("amplitude")
    jitter = vary("jitter")
    sway = rng.normal(0, 0.02, 2) * np.sin(np.linspace(0, np.pi * rng.uniform(0.5, 2), frames))[:, None]
    hands = SIGNS[sign](t)

    def to_image(body_xy):
        """Body units (frames, 2) or (frames, points, 2) -> image coordinates."""
        moved = sway if body_xy.ndim == 2 else sway[:, None, :]
        return centre + moved + scale * body_xy

    pose = np.zeros((frames, config.POSE_LANDMARKS, 4))
    for index, xy in _POSE_FIXED.items():
        pose[:, index, :2] = to_image(np.repeat(np.array(xy)[None], frames, axis=0))
        pose[:, index, 2] = -0.6 * scale if index <= 10 else (-0.1 * scale if index <= 12 else 0.05)
        pose[:, index, 3] = 0.999 if index <= 12 else 0.02

    face = np.zeros((frames, config.FACE_LANDMARKS, 3))
    face[..., :2] = to_image(np.repeat(_FACE[None, :, :2], frames, axis=0))
    face[..., 2] = _FACE[None, :, 2] * scale

    hand_blocks = {}
    for side, pose_ids in (("right", (12, 14, 16, 18, 20, 22)), ("left", (11, 13, 15, 17, 19, 21))):
        # A left-handed signer does the dominant hand's part with the left hand, mirrored.
        role = {"right": "left", "left": "right"}[side] if left_handed else side
        shoulder = np.array(_POSE_FIXED[pose_ids[0]])
        if role in hands:
            wrist, rotation, shape = hands[role]
            wrist = np.array(wrist, float)
            wrist = wrist * np.array([amplitude, 1.0]) + rng.normal(0, 0.04, 2)
            rotation = np.asarray(rotation, float) + rng.normal(0, 0.1)
            if left_handed:
                wrist[:, 0] *= -1
                rotation = -rotation
            points = _hand_points(_curls(shape, frames), rotation, mirror=(side == "left"))
            hand_xy = to_image(wrist[:, None, :] + HAND_LENGTH * points[..., :2])
            hand = np.concatenate([hand_xy, points[..., 2:] * scale * HAND_LENGTH], axis=-1)
            missing = _dropouts(rng, frames, vary("hand_dropout"))
            visible = 0.95
        else:  # resting below the frame: MediaPipe sees no hand
            wrist = still(shoulder + np.array([0.15 * np.sign(shoulder[0]), 1.5]), t)
            hand = np.zeros((frames, config.HAND_LANDMARKS, 3))
            hand[..., :2] = centre + scale * wrist[:, None, :]
            missing = np.ones(frames, bool)
            visible = 0.1
        wrist_image = to_image(wrist)
        outward = np.sign(shoulder[0])
        elbow = shoulder + (wrist - shoulder) * 0.5 + np.array([0.25 * outward, 0.35])
        shoulder_id, elbow_id, wrist_id, pinky_id, index_id, thumb_id = pose_ids
        pose[:, elbow_id, :2] = to_image(elbow)
        pose[:, wrist_id, :2] = wrist_image
        for pose_id, hand_id in ((pinky_id, 17), (index_id, 5), (thumb_id, 2)):
            pose[:, pose_id, :2] = hand[:, hand_id, :2] if role in hands else wrist_image
        for pose_id in (elbow_id, wrist_id, pinky_id, index_id, thumb_id):
            pose[:, pose_id, 2] = -0.3 * scale
            pose[:, pose_id, 3] = visible
        off_image = (hand[..., :2].min(axis=(1, 2)) < 0) | (hand[..., :2].max(axis=(1, 2)) > 1)
        hand[missing | off_image] = 0.0
        hand_blocks[side] = hand.reshape(frames, -1)

    pose[..., :3] += rng.normal(0, jitter, pose[..., :3].shape)
    pose[..., 3] = np.clip(pose[..., 3] + rng.normal(0, 0.01, pose[..., 3].shape), 0, 1)
    face += rng.normal(0, jitter * 0.5, face.shape)
    for side, block in hand_blocks.items():
        detected = np.any(block != 0, axis=1)
        block[detected] += rng.normal(0, jitter, block[detected].shape)
    return np.concatenate(
        [pose.reshape(frames, -1), face.reshape(frames, -1), hand_blocks["left"], hand_blocks["right"]],
        axis=1,
    )


def synth_arrays(actions=config.SPEC_ACTIONS, sequences=config.NUM_SEQUENCES, frames=config.SEQUENCE_LENGTH,
                 seed=0, left_handed_fraction=0.0):
    """X (n, frames, 1662) float64 and y (n,) without touching the disk."""
    rng = np.random.default_rng(seed)
    X, y = [], []
    for label, action in enumerate(actions):
        for _ in range(sequences):
            left_handed = rng.uniform() < left_handed_fraction
            X.append(synth_sequence(action, rng, frames, left_handed))
            y.append(label)
    return np.stack(X), np.array(y)


def write_mp_data(out_dir, actions=config.SPEC_ACTIONS, sequences=config.NUM_SEQUENCES,
                  frames=config.SEQUENCE_LENGTH, seed=0, left_handed_fraction=0.0):
    """Write out_dir/<Action>/<seq>/<frame>.npy (float64, as recording scripts write them)."""
    if os.path.exists(out_dir) and (not os.path.isdir(out_dir) or os.listdir(out_dir)):
        raise FileExistsError(f"{out_dir!r} is not empty; the synthetic signer writes only into a new folder")
    if sequences < 1 or not actions:
        raise ValueError(f"need at least one sign and one sequence per sign, got {len(actions)} and {sequences}")
    X, y = synth_arrays(actions, sequences, frames, seed, left_handed_fraction)
    names = [str(index % sequences) for index in range(len(y))]  # 0..sequences-1 per action
    # Written beside the target and renamed when complete: an interrupt leaves no half tree.
    partial = out_dir.rstrip(os.sep) + ".partial"
    if os.path.isdir(partial):
        shutil.rmtree(partial)
    data.write_tree(partial, X, [actions[label] for label in y], names)
    if os.path.isdir(out_dir):
        os.rmdir(out_dir)  # the empty folder the caller may have made
    os.rename(partial, out_dir)
    return out_dir
