"""The synthetic signer's vocabulary (signtrain.data.synth): ten signs as motions of the hands relative
to the body, and the hand shapes they use. Geometry in body units, as in signtrain.data.synth: origin
between the shoulders, shoulder width 1, x towards the image's right, y down.
"""

import numpy as np

# Curl of (thumb, index, middle, ring, pinky): 0 straight, 1 folded into the palm.
HANDSHAPES = {
    "flat": (0.3, 0, 0, 0, 0),
    "open": (0, 0, 0, 0, 0),
    "fist": (0.6, 1, 1, 1, 1),
    "point": (0.8, 0, 1, 1, 1),
    "ily": (0, 0, 1, 1, 0),
    "vee": (0.8, 0, 0, 1, 1),
    "pinch": (0.6, 0.6, 0.6, 0.6, 0.6),
}

# --- signs ----------------------------------------------------------------------------------
# Each sign: t in [0, 1] (array) -> dict of the hands it uses. A hand is (wrist xy in body
# units (T, 2), rotation of the fingers from "up" in radians (T,), handshape name or curls (T, 5)).
# The right hand is the dominant one; a hand a sign does not use rests below the image.


def moving(start, end, t):
    """(T, 2) points going from start to end as t goes from 0 to 1."""
    start, end = np.asarray(start, float), np.asarray(end, float)
    return start + (end - start) * t[:, None]


def still(point, t):
    """(T, 2) copies of one point: a hand held in place."""
    return np.repeat(np.asarray(point, float)[None, :], len(t), axis=0)


def _hello(t):
    wrist = moving((-0.45, -0.75), (-0.95, -0.7), t)
    return {"right": (wrist, -0.25 + 0.35 * np.sin(4 * np.pi * t), "open")}


def _thank_you(t):
    wrist = moving((-0.05, -0.35), (-0.35, 0.15), t)
    return {"right": (wrist, -0.1 - 0.9 * t, "flat")}


def _help(t):
    lift = -0.45 * t
    left = np.stack([0.15 + 0 * t, 0.55 + lift], axis=1)
    right = np.stack([0.0 + 0 * t, 0.35 + lift], axis=1)
    return {"left": (left, 1.35 + 0 * t, "flat"), "right": (right, 0.0 * t, "fist")}


def _yes(t):
    nod = 0.12 * np.sin(6 * np.pi * t)
    wrist = np.stack([-0.3 + 0 * t, 0.25 + nod], axis=1)
    return {"right": (wrist, 0.6 * np.sin(6 * np.pi * t), "fist")}


def _no(t):
    snap = 0.5 + 0.5 * np.cos(4 * np.pi * t)  # fingers open and close on the thumb twice
    curls = np.stack([0.4 + 0.4 * snap, snap, snap, 1 + 0 * t, 1 + 0 * t], axis=1)
    wrist = np.stack([-0.4 + 0.05 * np.sin(4 * np.pi * t), -0.1 + 0 * t], axis=1)
    return {"right": (wrist, -0.4 + 0 * t, curls)}


def _circle_on_chest(t):
    angle = 2 * np.pi * 1.5 * t
    return np.stack([-0.12 + 0.16 * np.cos(angle), 0.45 + 0.16 * np.sin(angle)], axis=1)


def _please(t):
    return {"right": (_circle_on_chest(t), 0.9 + 0 * t, "flat")}


def _sorry(t):
    return {"right": (_circle_on_chest(t), 0.9 + 0 * t, "fist")}


def _i_love_you(t):
    wrist = moving((-0.35, 0.05), (-0.45, -0.15), np.minimum(1, 2 * t))
    wrist = wrist + np.stack([0.02 * np.sin(10 * np.pi * t), 0 * t], axis=1)
    return {"right": (wrist, 0 * t, "ily")}


def _stop(t):
    chop = np.minimum(1, t * 1.6) ** 2
    right = moving((-0.2, -0.35), (-0.05, 0.35), chop)
    left = still((0.2, 0.5), t)
    return {"left": (left, 1.45 + 0 * t, "flat"), "right": (right, 0.2 + 0 * t, "flat")}


def _more(t):
    apart = 0.08 + 0.3 * np.abs(np.cos(2 * np.pi * t))
    height = 0.2 + 0 * t
    right = np.stack([-apart, height], axis=1)
    left = np.stack([apart, height], axis=1)
    return {"left": (left, -1.2 + 0 * t, "pinch"), "right": (right, 1.2 + 0 * t, "pinch")}


SIGNS = {
    "Hello": _hello,
    "Thank_You": _thank_you,
    "Help": _help,
    "Yes": _yes,
    "No": _no,
    "Please": _please,
    "Sorry": _sorry,
    "I_Love_You": _i_love_you,
    "Stop": _stop,
    "More": _more,
}
