"""`--features relative`: what the network sees of a frame, computed inside the saved model.

The raw frame (the spec's input, `--features raw`, the default) is 1662 absolute image positions,
1404 of them the face mesh: a network trained on one person learns who signs and where they sit.
The relative front-end keeps what a sign is made of and drops the rest. Per frame:

- body: x and y of the nose, shoulders, elbows and wrists, four lip points (mouth corners, inner
  upper and lower lip) and both hands' 21 points, relative to the midpoint of the shoulders and
  divided by the shoulder width (where the person sits and how far from the camera no longer count);
- hand shape: each hand's other 20 points relative to its own wrist, divided by the hand's size
  (wrist to the base of the middle finger): the shape, wherever the hand is;
- motion: the frame-to-frame difference of all of the above (zero on the first frame);
- a part MediaPipe did not see (all zeros) gives zeros, and so does its motion;
- mirror: when a sequence shows the left hand in more frames than the right, the whole sequence is
  mirrored (x -> -x, left <-> right), so that the more active hand is always on one side and a
  left-handed signer looks like a right-handed one.

372 values per frame go to the spec's first LSTM. The layers are standard Keras layers with fixed
weights (no custom objects: plain `load_model` in Keras 3 and tf_keras; ONNX and TFLite convert
them). Keras has no division layer: as in signtrain.model.preprocess, x / |d| comes from
UnitNormalization over [K * d, x] with K = 1e4 (relative error |x|^2 / (2 K^2 |d|^2), ~1e-6 here).
`relative_numpy` is the same computation in numpy: the reference the layers are tested against.
"""

import numpy as np

from signtrain import config

# What `--features` may name, and what the first LSTM then sees (the CLI help shows these words).
FEATURE_SETS = {
    "raw": "the frame as recorded (the spec's input)",
    "relative": "body and hands relative to the shoulders, hand shapes, a few lip points, motion; mirrored to "
                "the more active hand (signtrain.model.features)",
}
DEFAULT_FEATURES = "raw"
K = 1e4
EPSILON = 0.1  # beside K * |d| (~1e3): changes a value by ~EPSILON^2 / (2 K^2 |d|^2), ~1e-8 of it
BODY_POINTS = (0, 11, 12, 13, 14, 15, 16)  # pose: nose, shoulders, elbows, wrists
LIP_POINTS = (61, 291, 13, 14)  # face mesh: mouth corners, inner upper and lower lip
_LEFT_SHOULDER, _RIGHT_SHOULDER = 11, 12
_WRIST, _MIDDLE_BASE = 0, 9
# Mirror image: which body point takes which one's place (nose and the inner lip points stay).
_BODY_MIRROR = {0: 0, 11: 12, 12: 11, 13: 14, 14: 13, 15: 16, 16: 15}
_LIP_MIRROR = {61: 291, 291: 61, 13: 13, 14: 14}
BLOCK = {name: index for index, (name, _, _) in enumerate(config.BLOCKS)}


def _offset(part, landmark):
    """Index of a landmark's x inside one 1662-value frame."""
    width = config.POSE_VALUES if part == "pose" else config.HAND_VALUES  # face and hands: 3 values
    return config.block_slice(part).start + landmark * width


def points():
    """The points of the output, in order: (group, part, landmark). "body" points are taken relative
    to the shoulders, "shape" points relative to their hand's wrist. Two values (x, y) each."""
    hands = ("left_hand", "right_hand")
    body = [("body", "pose", p) for p in BODY_POINTS] + [("body", "face", p) for p in LIP_POINTS]
    body += [("body", hand, p) for hand in hands for p in range(config.HAND_LANDMARKS)]
    return body + [("shape", hand, p) for hand in hands for p in range(1, config.HAND_LANDMARKS)]


def _needs(point):
    """The blocks that must be seen for the point's values to mean something."""
    group, part, _ = point
    return {"pose", part} if group == "body" else {part}


def _twin(point):
    """The point that takes this one's place in a mirror image (person's left <-> right)."""
    group, part, landmark = point
    if part == "pose":
        return group, part, _BODY_MIRROR[landmark]
    if part == "face":
        return group, part, _LIP_MIRROR[landmark]
    return group, "right_hand" if part == "left_hand" else "left_hand", landmark


STATIC_SIZE = 2 * len(points())  # 186
OUTPUT_SIZE = 2 * STATIC_SIZE  # the static values, then their motion: 372


def mirror_matrix():
    """(OUTPUT_SIZE, OUTPUT_SIZE) signed permutation: features @ it = the mirror image's features."""
    order = {point: index for index, point in enumerate(points())}
    matrix = np.zeros((OUTPUT_SIZE, OUTPUT_SIZE))
    for index, point in enumerate(points()):
        twin = order[_twin(point)]
        for half in (0, STATIC_SIZE):  # static and motion values mirror alike
            matrix[half + 2 * twin, half + 2 * index] = -1.0  # x changes sign about the shoulders' midpoint
            matrix[half + 2 * twin + 1, half + 2 * index + 1] = 1.0
    return matrix


# --- the reference, in numpy ----------------------------------------------------------------


def _seen(X):
    """{block: (..., frames) bool}: MediaPipe saw the part (not all of its values are zero)."""
    return {name: np.any(X[..., start:stop] != 0, axis=-1) for name, start, stop in config.BLOCKS}


def relative_numpy(X, mirror=True):
    """The front-end's output for raw frames X (..., frames, 1662), in float64."""
    X = np.asarray(X, dtype=np.float64)
    seen = _seen(X)
    xy = lambda part, landmark: X[..., _offset(part, landmark):_offset(part, landmark) + 2]  # noqa: E731
    left, right = xy("pose", _LEFT_SHOULDER), xy("pose", _RIGHT_SHOULDER)
    centre, width = (left + right) / 2, np.linalg.norm(left - right, axis=-1, keepdims=True)
    # Per value: every block it needs is seen (its x and y share the point's mask).
    masks = np.repeat(np.stack([np.all([seen[block] for block in _needs(point)], axis=0) for point in points()],
                               axis=-1), 2, axis=-1)
    columns = []
    for group, part, landmark in points():
        if group == "body":
            value = (xy(part, landmark) - centre) / np.where(width > 0, width, 1)
        else:
            wrist = xy(part, _WRIST)
            size = np.linalg.norm(xy(part, _MIDDLE_BASE) - wrist, axis=-1, keepdims=True)
            value = (xy(part, landmark) - wrist) / np.where(size > 0, size, 1)
        columns.append(value)
    static = np.where(masks, np.concatenate(columns, axis=-1), 0)
    earlier = lambda values: np.concatenate([np.zeros_like(values[..., :1, :]), values[..., :-1, :]], axis=-2)  # noqa: E731
    out = np.concatenate([static, np.where(masks & earlier(masks), static - earlier(static), 0)], axis=-1)
    if mirror:
        flip = seen["left_hand"].sum(axis=-1) > seen["right_hand"].sum(axis=-1)  # per sequence
        out = np.where(flip[..., None, None], out @ mirror_matrix(), out)
    return out


# --- the same as Keras layers ---------------------------------------------------------------


def _divided(layers, inputs, name, centred, scale):
    """Dense(centred) divided by the length of Dense(scale) (2 columns), both (1662, n) matrices.

    A third, constant EPSILON joins the normalized vector: a part that was not seen (all zeros) then
    gives zeros, not 0 / 0 (TFLite's L2 normalization has no epsilon of its own)."""
    from signtrain.model.preprocess import fixed

    values = fixed(layers.Dense(centred.shape[1], use_bias=False, name=f"{name}_centred"), centred)(inputs)
    length = fixed(layers.Dense(3, name=f"{name}_scale"), np.hstack([K * scale, np.zeros((len(scale), 1))]),
                   [0.0, 0.0, EPSILON])(inputs)
    unit = layers.UnitNormalization(axis=-1, name=f"{name}_divided")(layers.Concatenate(name=f"{name}_joined")(
        [length, values]))
    keep = np.vstack([np.zeros((3, centred.shape[1])), K * np.eye(centred.shape[1])])  # drop the scale, undo K
    return fixed(layers.Dense(centred.shape[1], use_bias=False, name=f"{name}_values"), keep)(unit)


def _matrices(group):
    """(centred, scale) matrices of one group's points: "body", or "shape" of one hand."""
    chosen = [point for point in points() if point[0] == group[0] and (group[0] == "body" or point[1] == group[1])]
    centred, scale = np.zeros((config.NUM_FEATURES, 2 * len(chosen))), np.zeros((config.NUM_FEATURES, 2))
    for axis in (0, 1):
        if group[0] == "body":
            first, second = _offset("pose", _LEFT_SHOULDER) + axis, _offset("pose", _RIGHT_SHOULDER) + axis
            reference = {first: 0.5, second: 0.5}
        else:
            first, second = _offset(group[1], _MIDDLE_BASE) + axis, _offset(group[1], _WRIST) + axis
            reference = {second: 1.0}
        scale[first, axis], scale[second, axis] = 1, -1
        for index, (_, part, landmark) in enumerate(chosen):
            centred[_offset(part, landmark) + axis, 2 * index + axis] += 1
            for offset, weight in reference.items():
                centred[offset, 2 * index + axis] -= weight
    return centred, scale


def _static_mask(layers, inputs):
    """(batch, frames, STATIC_SIZE) 1 where every block a value needs is seen, else 0; and the
    per-block "unseen" flags (batch, frames, 4)."""
    from signtrain.model.preprocess import fixed

    blocks = np.zeros((config.NUM_FEATURES, len(config.BLOCKS)))
    for index, (_, start, stop) in enumerate(config.BLOCKS):
        blocks[start:stop, index] = -K * K
    needs = np.zeros((len(config.BLOCKS), STATIC_SIZE))
    for index, point in enumerate(points()):
        for block in _needs(point):
            needs[BLOCK[block], 2 * index:2 * index + 2] = -1
    squares = layers.Multiply(name="relative_squares")([inputs, inputs])
    # 1 - K^2 * (sum of squares), clipped at 0: 1 for a part that is all zeros, 0 for a seen one.
    unseen = fixed(layers.Dense(len(config.BLOCKS), name="relative_part_unseen"), blocks,
                   np.ones(len(config.BLOCKS)))(squares)
    unseen = layers.ReLU(name="relative_unseen_0_or_1")(unseen)
    # 1 - (number of needed parts unseen), clipped at 0: 1 only when every needed part is seen.
    mask = fixed(layers.Dense(STATIC_SIZE, name="relative_needs"), needs, np.ones(STATIC_SIZE))(unseen)
    return layers.ReLU(name="relative_mask")(mask), unseen


def _previous_frame(layers, tensor, name):
    """The tensor one frame later in time: frame t holds frame t-1's values, frame 0 zeros."""
    return layers.Cropping1D((0, 1), name=f"{name}_crop")(layers.ZeroPadding1D((1, 0), name=f"{name}_pad")(tensor))


def _mirrored(layers, values, unseen, frames):
    """values mirrored when the sequence sees the left hand in more frames than the right."""
    from signtrain.model.preprocess import fixed

    difference = np.zeros((len(config.BLOCKS), 1))
    difference[BLOCK["right_hand"], 0], difference[BLOCK["left_hand"], 0] = K, -K
    more_left = fixed(layers.Dense(1, use_bias=False, name="relative_left_minus_right"), difference)(unseen)
    more_left = layers.GlobalAveragePooling1D(name="relative_over_frames")(more_left)
    flip = layers.ReLU(max_value=1.0, name="relative_flip_0_or_1")(more_left)  # >= 1 frame more: K / frames >> 1
    flip = fixed(layers.Dense(OUTPUT_SIZE, use_bias=False, name="relative_flip_everywhere"),
                 np.ones((1, OUTPUT_SIZE)))(flip)
    flip = layers.RepeatVector(frames, name="relative_flip_per_frame")(flip)
    image = fixed(layers.Dense(OUTPUT_SIZE, use_bias=False, name="relative_mirror_image"), mirror_matrix())(values)
    change = layers.Multiply(name="relative_flip_change")([layers.Subtract(name="relative_change")([image, values]),
                                                           flip])
    return layers.Add(name="relative_canonical")([values, change])


def relative_keypoints(inputs, mirror=True, layers=None):
    """The front-end on a (batch, frames, 1662) Keras tensor; returns (batch, frames, OUTPUT_SIZE).
    `layers` is the Keras module's layers (Keras 3's by default; see model.build_model)."""
    if layers is None:
        from tensorflow.keras import layers

    parts = [_divided(layers, inputs, "relative_body", *_matrices(("body",)))]
    parts += [_divided(layers, inputs, f"relative_{hand}", *_matrices(("shape", hand)))
              for hand in ("left_hand", "right_hand")]
    mask, unseen = _static_mask(layers, inputs)
    static = layers.Multiply(name="relative_seen_only")([layers.Concatenate(name="relative_static")(parts), mask])
    # Motion: this frame minus the previous one, where both frames saw the parts.
    both = layers.Add(name="relative_mask_pair")([mask, _previous_frame(layers, mask, "relative_mask_previous")])
    both = layers.ReLU(name="relative_both_seen")(layers.Rescaling(1.0, offset=-1.0, name="relative_pair_minus_1")(
        both))
    motion = layers.Subtract(name="relative_motion_raw")([static, _previous_frame(layers, static, "relative_previous")])
    motion = layers.Multiply(name="relative_motion")([motion, both])
    values = layers.Concatenate(name="relative_features")([static, motion])
    return _mirrored(layers, values, unseen, inputs.shape[1]) if mirror else values
