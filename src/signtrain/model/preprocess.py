"""Opt-in keypoint normalization that travels inside the saved model.

`--normalize` puts these layers in front of the spec's network: every x, y and z of a frame
becomes relative to the midpoint of the shoulders and is divided by the shoulder width, pose
visibility stays as it is, and a body part MediaPipe did not see (all zeros) stays all zeros. The
live app keeps feeding raw 1662-value frames: the model does the rest.

Only standard Keras layers with fixed (non-trainable) weights are used, so `load_model` needs no
custom objects. Keras has no division layer; the division by the shoulder width comes from
UnitNormalization over [K * shoulder vector, coordinates]: its norm is K * width to within
|coordinates|^2 / (2 K^2 width^2), about 1e-6 of the value with K = 1e4.
"""

import numpy as np

from signtrain import config

K = 1e4
_LEFT_SHOULDER, _RIGHT_SHOULDER = 11, 12
# x and y of each shoulder inside a frame (pose landmarks are 4 values each).
_LEFT_XY = slice(_LEFT_SHOULDER * config.POSE_VALUES, _LEFT_SHOULDER * config.POSE_VALUES + 2)
_RIGHT_XY = slice(_RIGHT_SHOULDER * config.POSE_VALUES, _RIGHT_SHOULDER * config.POSE_VALUES + 2)


def _positions():
    """Indices of the x, y, z and visibility values of one 1662-value frame."""
    xs, ys, zs, visibility = [], [], [], []
    for name, start, stop in config.BLOCKS:
        width = config.POSE_VALUES if name == "pose" else config.HAND_VALUES  # face and hands: 3
        for offset in range(start, stop, width):
            xs.append(offset)
            ys.append(offset + 1)
            zs.append(offset + 2)
            if width == 4:
                visibility.append(offset + 3)
    return np.array(xs), np.array(ys), np.array(zs), np.array(visibility)


def fixed(layer, *weights):
    """A standard layer used as a constant function: weights set once, never trained."""
    layer.trainable = False
    layer._signtrain_weights = [np.asarray(w, dtype=np.float32) for w in weights]
    return layer


def _mask(layers, name, values):
    """Multiply each of the 1662 values by a constant: a depthwise 1x1 convolution over time. (An
    EinsumDense did the same, but the TFLite converter rejects its '...i,i->...i' and ONNX Runtime
    runs it slowly.)"""
    return fixed(layers.DepthwiseConv1D(1, use_bias=False, name=name), np.reshape(values, (1, -1, 1)))


def normalize_keypoints(inputs, layers=None):
    """Apply the normalization to a (batch, frames, 1662) Keras tensor; returns the new tensor.
    `layers` is the Keras module's layers (Keras 3's by default; see model.build_model)."""
    if layers is None:
        from tensorflow.keras import layers

    n = config.NUM_FEATURES
    xs, ys, zs, visibility = _positions()
    pose_x = lambda landmark: landmark * config.POSE_VALUES  # noqa: E731

    # Shoulder midpoint (2 values) and its copy at every x and y position.
    centre = np.zeros((n, 2))
    centre[[pose_x(_LEFT_SHOULDER), pose_x(_RIGHT_SHOULDER)], 0] = 0.5
    centre[[pose_x(_LEFT_SHOULDER) + 1, pose_x(_RIGHT_SHOULDER) + 1], 1] = 0.5
    spread = np.zeros((2, n))
    spread[0, xs], spread[1, ys] = 1, 1
    coordinates = np.zeros(n)
    coordinates[np.concatenate([xs, ys, zs])] = 1
    keep_visibility = np.zeros(n)
    keep_visibility[visibility] = 1
    # K times the shoulder vector (left minus right shoulder, x and y).
    shoulder = np.zeros((n, 2))
    shoulder[pose_x(_LEFT_SHOULDER), 0], shoulder[pose_x(_RIGHT_SHOULDER), 0] = K, -K
    shoulder[pose_x(_LEFT_SHOULDER) + 1, 1], shoulder[pose_x(_RIGHT_SHOULDER) + 1, 1] = K, -K
    # Per block: 1 - K * (sum of squares), clipped by ReLU, then 1 - that: 1 where seen, 0 where all zeros.
    block_sum = np.zeros((n, len(config.BLOCKS)))
    block_expand = np.zeros((len(config.BLOCKS), n))
    for index, (_, start, stop) in enumerate(config.BLOCKS):
        block_sum[start:stop, index] = -K * K
        block_expand[index, start:stop] = -1

    offsets = fixed(layers.Dense(2, use_bias=False, name="shoulder_midpoint"), centre)(inputs)
    offsets = fixed(layers.Dense(n, use_bias=False, name="midpoint_everywhere"), spread)(offsets)
    centred = layers.Subtract(name="relative_to_shoulders")([inputs, offsets])
    centred = _mask(layers, "coordinates_only", coordinates)(centred)
    shoulder_vector = fixed(layers.Dense(2, use_bias=False, name="shoulder_vector"), shoulder)(inputs)
    joined = layers.Concatenate(name="shoulder_and_coordinates")([shoulder_vector, centred])
    unit = layers.UnitNormalization(axis=-1, name="divide_by_shoulder_width")(joined)
    unit = layers.Permute((2, 1), name="coordinates_first")(unit)  # drop the 2 shoulder values: Cropping1D crops axis 1
    unit = layers.Cropping1D((2, 0), name="drop_shoulder_vector")(unit)
    scaled = layers.Rescaling(K, name="undo_k")(layers.Permute((2, 1), name="frames_first")(unit))
    kept = _mask(layers, "visibility_only", keep_visibility)(inputs)
    normalized = layers.Add(name="with_visibility")([scaled, kept])

    squares = layers.Multiply(name="squares")([inputs, inputs])
    unseen = fixed(layers.Dense(len(config.BLOCKS), name="part_unseen"), block_sum, np.ones(len(config.BLOCKS)))(
        squares)
    unseen = layers.ReLU(name="unseen_0_or_1")(unseen)
    seen = fixed(layers.Dense(n, name="part_seen_mask"), block_expand, np.ones(n))(unseen)
    return layers.Multiply(name="missing_parts_stay_zero")([normalized, seen])


def set_fixed_weights(model):
    """Give every fixed layer its constant weights (call once the model is built)."""
    for layer in model.layers:
        weights = getattr(layer, "_signtrain_weights", None)
        if weights is not None:
            layer.set_weights(weights)


def normalize_numpy(X):
    """The same transformation in numpy: the reference the layers are tested against."""
    X = np.asarray(X, dtype=np.float64)
    xs, ys, zs, _ = _positions()
    out = X.copy()
    left, right = X[..., _LEFT_XY], X[..., _RIGHT_XY]
    centre = (left + right) / 2
    width = np.linalg.norm(left - right, axis=-1, keepdims=True)
    width = np.where(width > 0, width, 1.0)
    out[..., xs] = (X[..., xs] - centre[..., :1]) / width
    out[..., ys] = (X[..., ys] - centre[..., 1:]) / width
    out[..., zs] = X[..., zs] / width
    for _, start, stop in config.BLOCKS:
        unseen = np.all(X[..., start:stop] == 0, axis=-1)
        out[unseen, start:stop] = 0
    return out


# --- augmentation (training only: nothing of it is needed at inference) -----------------------

# Pose landmarks that swap places in a mirror image (person's left <-> right).
_POSE_MIRROR_PAIRS = [(1, 4), (2, 5), (3, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16), (17, 18),
                      (19, 20), (21, 22), (23, 24), (25, 26), (27, 28), (29, 30), (31, 32)]


def face_mirror_order(X):
    """For each face-mesh landmark, the index of the landmark at its mirror position.

    The mesh's left/right pairs are found from the data itself, not from a table: the average face
    shape of the frames (each frame's face centred) is mirrored, and each landmark is matched to
    the nearest mirrored one (an optimal one-to-one assignment). On MediaPipe's symmetric mesh
    this pairs the left eye's landmarks with the right eye's, and keeps the midline in place.
    Identity when no frame has a face.
    """
    from scipy.optimize import linear_sum_assignment

    faces = np.asarray(X)[..., config.block_slice("face")].reshape(-1, config.FACE_LANDMARKS, 3)[..., :2]
    faces = faces[np.any(faces != 0, axis=(1, 2))]
    if not len(faces):
        return np.arange(config.FACE_LANDMARKS)
    template = (faces - faces.mean(axis=1, keepdims=True)).mean(axis=0)
    mirrored = template * np.array([-1.0, 1.0])
    cost = ((template[:, None, :] - mirrored[None, :, :]) ** 2).sum(axis=-1)
    rows, columns = linear_sum_assignment(cost)
    order = np.empty(config.FACE_LANDMARKS, dtype=int)
    order[rows] = columns
    return order


def _mirror(sequence, face_order=None):
    """The same signing by a mirror-image signer: x -> 1 - x, left and right swapped (pose pairs,
    hands, and the face mesh's pairs when face_order, from face_mirror_order, is given)."""
    out = sequence.copy()
    xs, _, _, _ = _positions()
    seen = out[:, xs] != 0
    out[:, xs] = np.where(seen, 1 - out[:, xs], 0)
    pose = out[:, config.block_slice("pose")].reshape(len(out), 33, 4)
    for left, right in _POSE_MIRROR_PAIRS:
        pose[:, [left, right]] = pose[:, [right, left]]
    out[:, config.block_slice("pose")] = pose.reshape(len(out), -1)
    if face_order is not None:
        face = out[:, config.block_slice("face")].reshape(len(out), config.FACE_LANDMARKS, 3)
        out[:, config.block_slice("face")] = face[:, face_order].reshape(len(out), -1)
    left_hand = out[:, config.block_slice("left_hand")].copy()
    out[:, config.block_slice("left_hand")] = out[:, config.block_slice("right_hand")]
    out[:, config.block_slice("right_hand")] = left_hand
    return out


def _move(sequence, rng):
    """A small rotation, scaling and shift about the shoulder midpoint, on every seen part."""
    xs, ys, zs, _ = _positions()
    angle = np.deg2rad(rng.uniform(-10, 10))
    scale = rng.uniform(0.85, 1.15)
    shift = rng.uniform(-0.05, 0.05, 2)
    centre = (sequence[:, _LEFT_XY] + sequence[:, _RIGHT_XY]) / 2  # shoulders of each frame
    x, y = sequence[:, xs] - centre[:, :1], sequence[:, ys] - centre[:, 1:]
    seen = (sequence[:, xs] != 0) | (sequence[:, ys] != 0)
    out = sequence.copy()
    out[:, xs] = np.where(seen, centre[:, :1] + scale * (np.cos(angle) * x - np.sin(angle) * y) + shift[0], 0)
    out[:, ys] = np.where(seen, centre[:, 1:] + scale * (np.sin(angle) * x + np.cos(angle) * y) + shift[1], 0)
    out[:, zs] = out[:, zs] * scale
    return out


def _retime(sequence, rng):
    """Time warp (a random monotone resampling) and a few dropped frames (the previous one repeats)."""
    frames = len(sequence)
    warp = np.sort(rng.uniform(0, 1, frames))
    warp = (warp - warp[0]) / max(warp[-1] - warp[0], 1e-9)
    mix = rng.uniform(0.3, 0.7)
    index = np.round(((1 - mix) * np.linspace(0, 1, frames) + mix * warp) * (frames - 1)).astype(int)
    for drop in rng.choice(np.arange(1, frames), size=rng.integers(0, 4), replace=False):
        index[drop] = index[drop - 1]
    return sequence[index]


def augment(X, y, rng, copies=2):
    """X plus `copies` altered takes of every sequence (half of them mirrored), with their labels."""
    extra = []
    face_order = face_mirror_order(X)
    for _ in range(copies):
        for sequence in X:
            take = _mirror(sequence, face_order) if rng.uniform() < 0.5 else sequence
            extra.append(_retime(_move(take, rng), rng))
    return np.concatenate([X, np.stack(extra).astype(X.dtype)]), np.concatenate([y] * (copies + 1))
